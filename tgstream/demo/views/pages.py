"""The HTML pages: the index and the live page."""
from __future__ import annotations

from pyramid.response import Response
from pyramid.view import view_config
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


#: the tab icon: a stream of three bars (SVG, which browsers take at this URL)
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<rect x="1" y="2" width="14" height="3" rx="1" fill="#2b6cb0"/>'
    '<rect x="1" y="7" width="10" height="3" rx="1" fill="#4299e1"/>'
    '<rect x="1" y="12" width="6" height="3" rx="1" fill="#90cdf4"/></svg>'
)


@view_config(route_name='favicon')
def favicon(request):
    return Response(FAVICON, content_type='image/svg+xml', cache_control='max-age=86400')
