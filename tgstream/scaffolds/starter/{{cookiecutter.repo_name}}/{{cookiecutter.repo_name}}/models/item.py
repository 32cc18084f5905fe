from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base


class Item(Base):
    __tablename__ = 'items'

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    value: Mapped[int] = mapped_column(default=0)

    def __json__(self, request):
        """How the ``json`` renderers (streamed or not) encode an item."""
        return {'id': self.id, 'name': self.name, 'value': self.value}
