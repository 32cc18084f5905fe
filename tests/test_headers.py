"""``content_disposition``: RFC 6266 download names, safe for any input.

Headers are parsed back with the standard library's :mod:`email` package:
``EmailMessage`` (policy ``HTTP``) for the name a client should use, and the
``compat32`` ``Message.get_params()`` for each parameter as sent.
"""
from __future__ import annotations

import email.policy
import email.utils
import string
import unicodedata
from email.message import EmailMessage, Message

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tgstream
from tgstream.headers import content_disposition, safe_filename

PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))

# Every code point, lone surrogates included (hypothesis leaves them out by
# default), with the characters an attacker would try made frequent.
any_char = st.characters(exclude_categories=())
hostile_char = st.sampled_from('\r\n\0\t"\\;/%\u2028\u202e\x85\x7f')
names = st.text(st.one_of(any_char, hostile_char))


def parse(header: str) -> EmailMessage:
    message = EmailMessage(policy=email.policy.HTTP)
    message['Content-Disposition'] = header
    return message


def params_as_sent(header: str) -> dict:
    """``{'filename': ..., 'filename*': ...}`` as sent (compat32 parser)."""
    message = Message()
    message['Content-Disposition'] = header
    sent = {}
    for key, value in message.get_params(header='content-disposition')[1:]:
        if isinstance(value, tuple):  # RFC 2231 / 8187 extended value
            assert value[0] == 'UTF-8' and value[1] == ''
            sent[key + '*'] = email.utils.collapse_rfc2231_value(value)
        else:
            sent[key] = value
    return sent


def is_safe_name(name: str) -> bool:
    """Names content_disposition must announce exactly as given."""
    return (
        name == name.strip()
        and name.strip('.') != ''
        and '/' not in name
        and '\\' not in name
        and all(
            unicodedata.category(c) not in ('Cc', 'Cs', 'Zl', 'Zp')
            and c not in '\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e'
            '\u2066\u2067\u2068\u2069'
            for c in name
        )
    )


@given(names, st.sampled_from(['attachment', 'inline']))
@example('a\r\nSet-Cookie: session=stolen', 'attachment')
@example('\ud800\udfff', 'inline')
def test_any_name_gives_a_printable_ascii_header(name, disposition):
    header = content_disposition(name, disposition)
    assert set(header) <= PRINTABLE_ASCII  # so never CR, LF or NUL
    message = parse(header)
    assert message.get_content_disposition() == disposition
    # the only defect the parser may note is filename + filename*
    assert all('duplicate parameter' in str(d)
               for d in message['Content-Disposition'].defects)
    announced = safe_filename(name)
    assert message.get_filename() == announced
    sent = params_as_sent(header)
    assert set(sent['filename']) <= PRINTABLE_ASCII - set('"\\%;/')
    assert sent['filename'].strip('.').strip()
    assert sent.get('filename*', sent['filename']) == announced
    assert ('filename*' in sent) == (sent['filename'] != announced)


@given(names.filter(is_safe_name))
def test_safe_names_round_trip_exactly(name):
    # the parsed parameter, not get_filename(): email.utils.unquote (used by
    # get_filename) also strips a "<...>" pair, as if the name were an address
    params = parse(content_disposition(name))['Content-Disposition'].params
    assert params['filename'] == name


@given(st.text(string.ascii_letters + string.digits + ' -_.,()[]+=!#$&@~',
               min_size=1).filter(is_safe_name))
def test_plain_ascii_names_need_no_extended_parameter(name):
    assert content_disposition(name) == 'attachment; filename="%s"' % name


@given(st.lists(names, max_size=4), names.filter(is_safe_name))
def test_only_the_base_name_is_kept(directories, base):
    for separator in '/\\':
        path = separator.join(directories + [base])
        assert safe_filename(path) == base


@pytest.mark.parametrize(
    'name, header',
    [
        ('report.csv', 'attachment; filename="report.csv"'),
        ('my "best" report.csv',
         "attachment; filename*=UTF-8''my%20%22best%22%20report.csv; "
         'filename="my _best_ report.csv"'),
        ('a\\b', 'attachment; filename="b"'),
        ('x;y.csv', "attachment; filename*=UTF-8''x%3By.csv; filename=\"x_y.csv\""),
        ('100%.csv', "attachment; filename*=UTF-8''100%25.csv; filename=\"100_.csv\""),
        ('../../etc/passwd', 'attachment; filename="passwd"'),
        ('C:\\Users\\eve\\report.csv', 'attachment; filename="report.csv"'),
        ('dir/', 'attachment; filename="download"'),
        ('', 'attachment; filename="download"'),
        (' \t ', 'attachment; filename="download"'),
        ('..', 'attachment; filename="download"'),
        ('a\r\nSet-Cookie: x=1', 'attachment; filename="a__Set-Cookie: x=1"'),
        ('nul\0.csv', 'attachment; filename="nul_.csv"'),
        ('Résumé.csv',
         "attachment; filename*=UTF-8''R%C3%A9sum%C3%A9.csv; filename=\"Resume.csv\""),
        ('数据.csv',
         "attachment; filename*=UTF-8''%E6%95%B0%E6%8D%AE.csv; filename=\"__.csv\""),
        # bidi override that would show "invoiceexe.pdf"
        ('invoice\u202efdp.exe', 'attachment; filename="invoice_fdp.exe"'),
        # NFKD of U+2100 is "a/c": the fallback has no separator either
        ('\u2100.txt', "attachment; filename*=UTF-8''%E2%84%80.txt; filename=\"a_c.txt\""),
    ],
)
def test_examples(name, header):
    assert content_disposition(name) == header


def test_inline_and_case_insensitive_disposition():
    assert content_disposition('a.pdf', 'inline') == 'inline; filename="a.pdf"'
    assert content_disposition('a.pdf', 'Attachment').startswith('attachment;')


@pytest.mark.parametrize(
    'disposition', ['form-data', 'attachment; filename="x"', '', None, 1]
)
def test_bad_disposition_is_a_value_error(disposition):
    with pytest.raises(ValueError, match=r"disposition=.*'attachment' or 'inline'"):
        content_disposition('a.csv', disposition)


@pytest.mark.parametrize('filename', [None, b'a.csv', 3])
def test_non_str_name_is_a_type_error(filename):
    with pytest.raises(TypeError, match='download file name must be str'):
        content_disposition(filename)


def test_exported_from_the_package():
    assert tgstream.content_disposition is content_disposition


def _download_app(make_testapp):
    def setup(config):
        def named(request):
            request.response.content_disposition = tgstream.content_disposition(
                request.params['name']
            )
            yield 'a,b\n'

        def fixed(request):
            yield 'a,b\n'

        config.add_route('named', '/named')
        config.add_view(named, route_name='named', stream=True)
        config.add_route('fixed', '/fixed')
        config.add_view(fixed, route_name='fixed', stream=True,
                        stream_filename='../Zürich "Q1".csv', stream_content_type='text/csv')

    return make_testapp(setup)


def test_filename_view_option(make_testapp):
    response = _download_app(make_testapp).get('/fixed')
    header = response.headers['Content-Disposition']
    assert header == content_disposition('Zürich "Q1".csv')
    assert parse(header).get_filename() == 'Zürich "Q1".csv'


@pytest.mark.parametrize(
    'name',
    ['evil\r\nSet-Cookie: session=stolen',
     'evil"; filename="other.exe',
     'x\r\n\r\n<script>alert(1)</script>'],
)
def test_per_request_names_cannot_inject_headers(make_testapp, name):
    app = _download_app(make_testapp)
    response = app.get('/named', params={'name': name})
    assert 'Set-Cookie' not in response.headers
    assert response.text == 'a,b\n'
    [header] = response.headers.getall('Content-Disposition')
    assert parse(header).get_filename() == safe_filename(name)



@pytest.mark.parametrize('name', ['<>', '<a>', '<report>.csv', 'a<b>c'])
def test_angle_brackets_are_sent_as_is(name):
    header = content_disposition(name)
    assert header == 'attachment; filename="%s"' % name
    assert parse(header)['Content-Disposition'].params['filename'] == name
