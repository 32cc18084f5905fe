"""``initialize_{{ cookiecutter.repo_name }}_db development.ini``: create and fill the database."""
import argparse
import sys

from pyramid.paster import bootstrap, setup_logging
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from .. import models

USE_ALEMBIC = '{{ cookiecutter.use_alembic }}' == 'yes'


def setup_models(dbsession, count=1000):
    """Add ``count`` example items unless there are some already."""
    if dbsession.scalars(select(models.Item).limit(1)).first() is not None:
        return 0
    dbsession.add_all(
        models.Item(name='item %d' % n, value=n * n) for n in range(1, count + 1)
    )
    return count


def parse_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('config_uri', help='Configuration file, e.g., development.ini')
    parser.add_argument('--items', type=int, default=1000, help='example items to add')
    return parser.parse_args(argv[1:])


def main(argv=sys.argv):
    args = parse_args(argv)
    setup_logging(args.config_uri)
    env = bootstrap(args.config_uri)
    request = env['request']
    try:
        if not USE_ALEMBIC:
            models.Base.metadata.create_all(request.dbsession.get_bind())
        with request.tm:
            added = setup_models(request.dbsession, args.items)
    except OperationalError:
        print(
            'Could not write to the database. Is it configured (sqlalchemy.url)%s?'
            % (' and migrated (alembic -c %s upgrade head)' % args.config_uri
               if USE_ALEMBIC else '')
        )
        return 1
    finally:
        env['closer']()
    print('added %d item(s)' % added)
    return 0
