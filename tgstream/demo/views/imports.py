"""CSV import: check the whole file first, then write it with streamed progress.

Everything that can be wrong with the *file* -- too large
(``demo.import.max_bytes``), not UTF-8, not CSV, ragged rows, unknown or
missing columns, oversized or invalid fields, duplicate names -- is found
while the view runs, before the stream's first item, so it is a plain 400
and nothing is written. What can only be found while writing (a name that
already exists in the database) dooms the transaction and ends the stream
with an ``aborted`` line: nothing is committed -- unless the request says
``existing=update`` (a query or form parameter): then such rows update the
user of that name, so an export (edited or not) can be imported back. Otherwise every row is
committed when the stream ends, before its last bytes are sent.
"""
from __future__ import annotations

import csv
import datetime
import io
import itertools
from typing import Any, Iterator

from pyramid.httpexceptions import HTTPMethodNotAllowed
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

import tgstream
from tgstream import expose

from ..models import User
from ..settings import demo_settings
from .params import bad_request

REQUIRED = ('name', 'email')
OPTIONAL = ('fullname', 'joined')
IGNORED = ('id',)  # so that an edited export can be imported again
#: multipart framing allowed on top of demo.import.max_bytes
MULTIPART_SLACK = 16 * 1024
REJECTED = 'import rejected, nothing was written: '
USAGE = (
    "send the CSV as the multipart field 'file' (curl -F file=@users.csv URL) "
    'or as a text/csv body (curl --data-binary @users.csv -H "Content-Type: text/csv" URL)'
)


def reject(message: str):
    return bad_request(REJECTED + message)


def read_upload(request, limit: int) -> bytes:
    """The uploaded file's bytes; a 400 if there is none or it is too large."""
    too_large = (
        'the file is larger than %d bytes (setting demo.import.max_bytes)' % limit
    )
    length = request.content_length
    if request.content_type == 'multipart/form-data':
        if length is not None and length > limit + MULTIPART_SLACK:
            raise reject(too_large)
        field = request.POST.get('file')
        if not hasattr(field, 'file'):
            raise reject('no file: ' + USAGE)
        data = field.file.read(limit + 1)
    elif request.content_type in ('text/csv', 'text/plain', 'application/octet-stream'):
        if length is not None and length > limit:
            raise reject(too_large)
        data = request.body_file.read(limit + 1)
    else:
        raise reject('unsupported content type %r: %s' % (request.content_type, USAGE))
    if len(data) > limit:
        raise reject(too_large)
    if not data.strip():
        raise reject('the file is empty')
    return data


def decode(data: bytes) -> None:
    """A 400 unless ``data`` is UTF-8 (with or without a BOM), strictly."""
    try:
        data.decode('utf-8-sig')
    except UnicodeDecodeError as exc:
        raise reject(
            'the file is not UTF-8 text: byte 0x%02x at offset %d (line %d) '
            'cannot be decoded; save the CSV as UTF-8'
            % (data[exc.start], exc.start, data.count(b'\n', 0, exc.start) + 1)
        ) from None


def check_header(row: list[str]) -> list[str]:
    header = [name.strip().lower() for name in row]
    known = REQUIRED + OPTIONAL + IGNORED
    for name in header:
        if name not in known:
            raise reject(
                'line 1: unknown column %r; the columns are %s (required), %s '
                '(optional) and %s (ignored)'
                % (name[:60], ', '.join(REQUIRED), ', '.join(OPTIONAL), ', '.join(IGNORED))
            )
        if header.count(name) > 1:
            raise reject('line 1: column %r appears twice' % name)
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise reject('line 1: the header lacks the column(s) %s' % ', '.join(missing))
    return header


def check_row(line: int, values: dict) -> dict:
    """One CSV row as ``User`` column values, or a 400 naming line and column."""
    row = {}
    for column in REQUIRED + OPTIONAL:
        value = values.get(column, '').strip()
        bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
        if bad is not None:
            raise reject('line %d, column %s: control character U+%04X'
                         % (line, column, ord(bad)))
        limit = User.LIMITS.get(column)
        if limit is not None and len(value) > limit:
            raise reject(
                'line %d, column %s: %d characters; at most %d are allowed'
                % (line, column, len(value), limit)
            )
        row[column] = value
    if not row['name']:
        raise reject('line %d, column name: empty' % line)
    if '@' not in row['email']:
        raise reject('line %d, column email: %r is not an e-mail address'
                     % (line, row['email']))
    try:
        row['joined'] = datetime.date.fromisoformat(row['joined']) if row['joined'] else None
    except ValueError:
        raise reject('line %d, column joined: %r is not a date (YYYY-MM-DD)'
                     % (line, row['joined'])) from None
    return row


def _users(data: bytes, seen: dict | None) -> Iterator[tuple[int, dict]]:
    """Each row of the CSV as ``(line, values)``, read from the upload's
    bytes as it goes (never a list of every row: memory stays a small
    multiple of the upload); a 400 for the first problem found. ``seen``
    collects the names, to reject duplicates."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding='utf-8-sig', newline='')
    reader = csv.reader(text, strict=True)
    try:
        header = check_header(next(reader, []))
        for fields in reader:
            line = reader.line_num
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                raise reject(
                    'line %d has %d field(s) but the header has %d (ragged rows '
                    'are rejected)' % (line, len(fields), len(header))
                )
            row = check_row(line, dict(zip(header, fields)))
            if seen is not None:
                if row['name'] in seen:
                    raise reject('line %d: name %r is also on line %d'
                                 % (line, row['name'], seen[row['name']]))
                seen[row['name']] = line
            yield line, row
    except csv.Error as exc:
        raise reject('line %d is not valid CSV: %s' % (reader.line_num, exc)) from None


def check_users(data: bytes) -> int:
    """Check every row (a 400 for the first problem); the number of rows."""
    total = sum(1 for _ in _users(data, seen={}))
    if not total:
        raise reject('the file has a header but no rows')
    return total


#: what ``existing=`` may say about rows naming a user that exists
EXISTING = ('error', 'update')


def existing_mode(request) -> str:
    value = request.params.get('existing', 'error')
    if value not in EXISTING:
        raise reject('existing=%r is not valid; use existing=error (the default) '
                     'or existing=update' % value[:40])
    return value


def insert_new(session, rows: list[dict], update: bool = False) -> set[str]:
    """Insert ``rows``; the names that already existed (not inserted).

    With ``update``, a row naming a user that exists updates that user
    (``ON CONFLICT (name) DO UPDATE``) and the result is empty.

    One ``INSERT ... ON CONFLICT (name) DO NOTHING RETURNING name`` per
    batch: each row is checked against the unique index on ``name``. (A
    ``SELECT ... WHERE name IN (...)`` before the insert was planned, inside
    the importing transaction, as a sequential scan -- the table's
    statistics say it is nearly empty -- so every batch read the whole
    table: quadratic, 2.5 s per 1000 rows on PostgreSQL.)
    """
    dialect = session.get_bind().dialect.name
    dialect_insert: Any
    if dialect == 'postgresql':
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == 'sqlite':
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - the demo runs on SQLite and PostgreSQL
        names = [row['name'] for row in rows]
        taken = set(session.scalars(select(User.name).where(User.name.in_(names))))
        if not taken:
            session.execute(insert(User), rows)
        return taken
    # ORM-enabled (an entity, not its table): zope.sqlalchemy then knows
    # the session wrote, and the transaction commits
    statement = dialect_insert(User)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=['name'],
            set_={c: statement.excluded[c] for c in ('fullname', 'email', 'joined')},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=['name'])
    statement = statement.returning(User.name)
    inserted = set(session.scalars(statement, rows))
    return {row['name'] for row in rows} - inserted


def write_rows(request, rows: Iterator[tuple[int, dict]], total: int, batch: int,
               existing: str = 'error'):
    """Insert ``rows`` ``batch`` at a time, yielding progress objects.

    A row naming a user that exists aborts everything, or with
    ``existing='update'`` updates that user.
    """
    session = request.dbsession
    written = 0
    yield {'status': 'started', 'rows': total, 'written': 0}
    while True:
        chunk = list(itertools.islice(rows, batch))
        if not chunk:
            break
        error = None
        try:
            taken = insert_new(session, [row for _, row in chunk],
                               update=existing == 'update')
        except IntegrityError:
            # written by someone else meanwhile; the driver's message is
            # for the log, not the client
            taken = set()
            error = 'lines %d-%d conflict with rows written meanwhile' % (
                chunk[0][0], chunk[-1][0])
        if taken:
            line, name = next((line, row['name']) for line, row in chunk
                              if row['name'] in taken)
            error = 'line %d: a user named %r already exists' % (line, name)
        if error is not None:
            request.tm.doom()  # the stream ends normally; the transaction aborts
            yield {'status': 'aborted', 'rows': total, 'written': 0,
                   'error': error, 'committed': 0}
            return
        written += len(chunk)
        announce(request, chunk)
        yield {'status': 'writing', 'rows': total, 'written': written}
    if written:
        announce_total(request)
    yield {'status': 'written', 'rows': total, 'written': written,
           'committed': 'when this response ends'}


#: users named in one live notification (the rest are counted): a
#: notification must stay under PostgreSQL's 8000 bytes
ANNOUNCED = 20


def announce(request, chunk: list[tuple[int, dict]]) -> None:
    """Tell every open /live page (``users`` channel) about a written batch;
    delivered only if the import commits."""
    users = [{'name': row['name'], 'email': row['email'], 'fullname': row['fullname']}
             for _, row in chunk[:ANNOUNCED]]
    tgstream.notify(request, 'users', {'users': users, 'more': len(chunk) - len(users)})


def announce_total(request) -> None:
    """Tell every open /live page how many users the table holds once the
    import commits (one count per import, never per batch)."""
    total = request.dbsession.scalar(select(func.count()).select_from(User))
    tgstream.notify(request, 'users', {'users': [], 'more': 0, 'total': total})


@expose('ndjson', route_name='users_import', request_method='POST', stream=True)
def import_users(request):
    settings = demo_settings(request)
    existing = existing_mode(request)
    data = read_upload(request, settings.import_max_bytes)
    decode(data)  # a 400 for a file that is not UTF-8 (the text is not kept)
    total = check_users(data)  # every problem with the file, before writing
    return write_rows(request, _users(data, seen=None), total, settings.import_batch,
                      existing)


@expose(route_name='users_import', request_method='GET')
@expose(route_name='tg_stream_write', request_method='GET')
def post_only(request):
    """A clear 405 instead of Pyramid's 404 for a POST-only route."""
    return HTTPMethodNotAllowed(
        text='%s takes a POST; see %s\n' % (request.path, request.route_url('index')),
        content_type='text/plain', charset='utf-8', headers={'Allow': 'POST'},
    )
