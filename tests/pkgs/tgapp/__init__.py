"""TurboGears 2 style: a global scoped session on the global transaction
manager, no pyramid_tm. The seed document's database examples, ported."""
import time

import transaction
import zope.sqlalchemy
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column, scoped_session, sessionmaker

from tests.dbapp import Base, User
from tgstream import expose

PAUSE = 0.0

DBSession = scoped_session(sessionmaker())
zope.sqlalchemy.register(DBSession)


class Permission(Base):
    __tablename__ = 'permissions'
    id: Mapped[int] = mapped_column(primary_key=True)
    permission_name: Mapped[str] = mapped_column(String(50), unique=True)


def includeme(config):
    for name in ('stream_db', 'write_literal', 'write', 'write_fails'):
        config.add_route(name, '/' + name)
    config.scan('.')


class RootController:
    def __init__(self, request):
        self.request = request

    # "Reading from Database" (TurboGears' filter_by(user_id=...) is our id)
    @expose(route_name='stream_db', stream=True, content_type='application/json')
    def stream_db(self):
        def output_pause():
            num = 0
            yield '['
            while num < 9:
                u = DBSession.query(User).filter_by(id=num).first()
                num += 1
                yield u and '"%s", ' % u.name or 'null, '
                time.sleep(PAUSE)
            DBSession.remove()
            yield 'null]'

        return output_pause()

    # "Writing to Database", literally: flush, commit and remove by hand.
    # (The seed's generator has no yield; a progress line per row is added.)
    @expose(route_name='write_literal', stream=True, content_type='application/json')
    def write_literal(self):
        def output_pause():
            num = 0
            while num < 9:
                DBSession.add(Permission(permission_name='perm_%s' % num))
                num += 1
                yield '%d\n' % num
                time.sleep(PAUSE)
            DBSession.flush()
            transaction.commit()
            DBSession.remove()

        return output_pause()

    # The same without the manual steps: tgstream.sqlalchemy.session does them.
    @expose(route_name='write', stream=True)
    def write(self):
        for num in range(9):
            DBSession.add(Permission(permission_name='auto_%s' % num))
            yield '%d\n' % num

    @expose(route_name='write_fails', stream=True)
    def write_fails(self):
        DBSession.add(Permission(permission_name='lost_0'))
        yield 'one\n'
        DBSession.add(Permission(permission_name='lost_1'))
        DBSession.flush()
        raise RuntimeError('import failed')
