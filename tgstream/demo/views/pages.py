"""The HTML pages: the index and the live page."""
from __future__ import annotations

from sqlalchemy import func, select

from tgstream import expose

from ..models import User
from ..routes import SECTIONS
from ..settings import demo_settings


@expose('tgstream.demo:templates/index.jinja2', route_name='index')
def index(request):
    return {'sections': SECTIONS, 'settings': demo_settings(request)}


@expose('tgstream.demo:templates/live.jinja2', route_name='live')
def live(request):
    total = request.dbsession.scalar(select(func.count()).select_from(User))
    return {'total': total, 'settings': demo_settings(request)}
