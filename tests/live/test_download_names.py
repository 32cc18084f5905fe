"""Download names from user input cannot inject headers on the wire."""
from __future__ import annotations

import email.policy
from email.message import EmailMessage

import httpx
import pytest

import tgstream

pytestmark = pytest.mark.live


@pytest.mark.parametrize(
    'name, announced',
    [
        ('evil\r\nSet-Cookie: session=stolen\r\n\r\nbody',
         'evil__Set-Cookie: session=stolen____body'),
        ('../../Zürich; "Q1".csv', 'Zürich; "Q1".csv'),
    ],
)
def test_user_supplied_name_on_the_wire(make_app, live, name, announced):
    def export(request):
        request.response.content_disposition = tgstream.content_disposition(
            request.params['name']
        )
        yield 'a,b\n'

    def setup(config):
        config.add_route('export', '/export')
        config.add_view(export, route_name='export', stream=True,
                        stream_content_type='text/csv')

    url = live(make_app(setup))
    response = httpx.get(url + '/export', params={'name': name})
    assert response.status_code == 200 and response.text == 'a,b\n'
    assert 'set-cookie' not in response.headers
    [header] = response.headers.get_list('content-disposition')
    message = EmailMessage(policy=email.policy.HTTP)
    message['Content-Disposition'] = header
    assert message.get_filename() == announced
