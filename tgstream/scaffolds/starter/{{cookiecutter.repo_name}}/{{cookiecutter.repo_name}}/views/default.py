from sqlalchemy import func, select

from tgstream import expose, stream_query

from ..models import Item


@expose('{{ cookiecutter.repo_name }}:templates/home.jinja2', route_name='home')
def home(request):
    count = request.dbsession.scalar(select(func.count()).select_from(Item))
    return {'project': '{{ cookiecutter.project_name }}', 'count': count}


@expose('json', route_name='items', stream=True)
def items(request):
    """Every item as one JSON array, streamed in constant memory.

    The rows are read in batches while the response streams, inside the
    request's transaction; ``]`` is sent only after it committed, so a
    client never takes a cut stream for a complete one.
    """
    return stream_query(request.dbsession, select(Item).order_by(Item.id))
