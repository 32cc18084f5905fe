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


@expose('csv', route_name='items_csv', stream=True, filename='items.csv',
        columns=['id', 'name', 'value'])
def items_csv(request):
    """The same rows as a CSV download named ``items.csv``.

    ``expose`` takes TurboGears' ``filename=``, ``content_type=`` and
    ``columns=``; they become tgstream's view options, which are prefixed
    (``stream_filename``, ``stream_content_type``, ``stream_options``,
    ``stream_transaction``) so they never collide with other add-ons' options.
    """
    return stream_query(
        request.dbsession, select(Item.id, Item.name, Item.value).order_by(Item.id)
    )
