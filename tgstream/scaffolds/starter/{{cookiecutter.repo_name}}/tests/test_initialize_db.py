import transaction
from sqlalchemy import func, select

from {{ cookiecutter.repo_name }} import models
from {{ cookiecutter.repo_name }}.scripts.initialize_db import setup_models


def test_setup_models_adds_items_once(app):
    session_factory = app.registry['dbsession_factory']
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        dbsession = models.get_tm_session(session_factory, tm)
        assert setup_models(dbsession, count=10) == 10
    with tm:
        dbsession = models.get_tm_session(session_factory, tm)
        assert setup_models(dbsession, count=10) == 0
        assert dbsession.scalar(select(func.count()).select_from(models.Item)) == 10
