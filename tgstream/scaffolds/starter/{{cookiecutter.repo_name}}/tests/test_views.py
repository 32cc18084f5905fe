import json

from tgstream.testing import open_stream


def test_home(testapp, add_items):
    add_items(3)
    res = testapp.get('/', status=200)
    assert b'3 item(s)' in res.body


def test_notfound(testapp):
    res = testapp.get('/badurl', status=404)
    assert b'404' in res.body


def test_items_empty(testapp):
    res = testapp.get('/items', status=200)
    assert res.content_type == 'application/json'
    assert res.json == []


def test_items(testapp, add_items):
    add_items(3)
    res = testapp.get('/items', status=200)
    assert res.json == [
        {'id': 1, 'name': 'item 1', 'value': 1},
        {'id': 2, 'name': 'item 2', 'value': 2},
        {'id': 3, 'name': 'item 3', 'value': 3},
    ]


def test_items_csv_download(testapp, add_items):
    add_items(2)
    res = testapp.get('/items.csv', status=200)
    assert res.content_type == 'text/csv'
    assert res.headers['Content-Disposition'] == 'attachment; filename="items.csv"'
    assert res.text.splitlines() == ['id,name,value', '1,item 1,1', '2,item 2,2']


def test_items_stream_arrives_in_pieces(app, add_items):
    """The body is produced while it is read, a batch of rows at a time: the
    first piece is there before the query has been read to its end, and the
    array is closed only at the end."""
    add_items(2500)
    with open_stream(app, '/items') as response:
        assert response.status_code == 200
        first = response.next_chunk()
        assert first.startswith(b'[')
        assert b'"item 2500"' not in first
        rest = response.read()
    assert len(response.chunks) >= 3
    assert rest.endswith(b']')
    items = json.loads(first + rest)
    assert [item['id'] for item in items] == list(range(1, 2501))
