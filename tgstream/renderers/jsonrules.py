"""How the ``json``, ``ndjson`` and ``sse`` stream renderers encode values.

The rules are those of the application's own Pyramid ``json`` renderer (the
:class:`pyramid.renderers.JSON` registered as ``'json'``), so a value
streams exactly as it would render, plus built-ins for what database
results contain. For a value the serializer cannot encode by itself:

1. ``value.__json__(request)``;
2. an adapter added with ``JSON.add_adapter`` (type or interface);
3. built-ins: SQLAlchemy ``Row`` and ``RowMapping`` become objects keyed by
   column name; ``datetime``, ``date`` and ``time`` become ISO 8601 strings
   (``isoformat()``); ``Decimal`` and ``UUID`` become strings; an ``Enum``
   member becomes its ``value``. An adapter registered for one of these
   types replaces its built-in;
4. otherwise a ``TypeError`` naming the type (for an SQLAlchemy ORM instance,
   saying what to add).

Dictionary keys that JSON has no form for become strings, one rule for both
encoders: ``datetime``, ``date`` and ``time`` keys their ``isoformat()``,
``UUID`` keys ``str()``, ``Enum`` keys their value (then as any key). Other
keys (``Decimal``, tuples...) are a ``TypeError``.

The renderer's ``serializer=`` and its keyword arguments are honoured. With
the default serializer (``json.dumps``, no options) and orjson installed
(the ``fast`` extra), orjson encodes instead -- same rules, compact UTF-8
output; an item orjson refuses (an integer beyond 64 bits, a lone
surrogate, a ``time`` with a time zone) falls back to the standard library.
"""
from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import json
import types
import uuid
from itertools import chain, repeat
from typing import Any, Callable

from pyramid.interfaces import IJSONAdapter, IRendererFactory
from pyramid.renderers import JSON
from zope.interface import implementedBy, providedBy

from .._compat import NOT_A_ROW, json_renderer_parts, row_result
from ..items import ResultRows, TupleRows

try:  # the ``fast`` extra
    import orjson
except ImportError:  # pragma: no cover - exercised by the no-orjson tests
    orjson = None  # type: ignore[assignment]

try:  # SQLAlchemy is an optional extra
    from sqlalchemy.engine import Row, RowMapping
except ImportError:  # pragma: no cover
    Row = RowMapping = None  # type: ignore[assignment,misc]

_DEFAULT_RENDERER = JSON()

# What both the standard library's json and orjson encode without calling
# the default hook (their subclasses too, or they raise): never converted
# ahead of the serializer.
_SELF_ENCODED: tuple = (str, int, float, list, tuple, dict, enum.Enum, type(None))


#: How a column of rows becomes values of the dicts (see _row_converters).
_CONVERT, _RAW, _NAIVE = 'convert', 'raw', 'naive'


def _row_converters(fields, columns: dict | None = None, convert_value=None) -> tuple:
    """``(row -> dict, rows -> [dict])`` for rows with these fields.

    Generated code: a dict display (``{'id': v0, ...}``) is about 40% faster
    than ``dict(zip(fields, row))``, and a list comprehension over a batch
    saves a call per row -- it matters at a million rows. Each name is
    written with ``repr`` of a plain ``str``: no code is injected.

    ``columns`` maps indexes to ``(how, type, function)``; a column not in
    it is taken as it is. A value whose class is not exactly ``type`` goes
    through ``convert_value``; one that is: ``convert`` -- through the
    function; ``raw`` -- as it is; ``naive`` (datetimes) -- as it is when
    it has no time zone.
    """
    columns = columns or {}
    namespace: dict[str, Any] = {'_convert': convert_value}
    items = []
    for index, name in enumerate(fields):
        if index not in columns:
            items.append('%r: v%d' % (str(name), index))
            continue
        how, cls, convert = columns[index]
        namespace['_t%d' % index] = cls
        if how == _CONVERT:
            if convert.__class__ is _Adapted:  # the adapter itself: one call less
                namespace['_f%d' % index] = convert.adapter
                namespace['_r%d' % index] = convert.request
                value = '_f{0}(v{0}, _r{0})'
            else:
                namespace['_f%d' % index] = convert
                value = '_f{0}(v{0})'
            test = 'v{0}.__class__ is _t{0}'
        else:
            value = 'v{0}'
            test = 'v{0}.__class__ is _t{0}'
            if how == _NAIVE:
                test += ' and v{0}.tzinfo is None'
        items.append(('%r: (' + value + ' if ' + test + ' else _convert(v{0}))').format(
            index) % str(name))
    display = '{%s}' % ', '.join(items)
    names = '(%s)' % ''.join('v%d, ' % index for index in range(len(fields)))
    exec(  # noqa: S102
        'def one(row):\n    %s = row\n    return %s\n'
        'def many(rows):\n    return [%s for %s in rows]\n' % (names, display, display, names),
        namespace,
    )
    return namespace['one'], namespace['many']


def _isoformat_idiom(obj, request):
    return obj.isoformat()


def _method_idiom(adapter: Any, cls: type) -> Callable[[Any], Any] | None:
    """``cls.isoformat`` when ``adapter`` is the usual
    ``lambda obj, request: obj.isoformat()`` (the same bytecode, no extra
    arguments) and that is a method of ``cls`` written in C: the adapter's
    result exactly, without a Python call per value."""
    code = getattr(adapter, '__code__', None)
    reference = _isoformat_idiom.__code__
    if (
        type(adapter) is not types.FunctionType
        or code is None
        or code.co_code != reference.co_code
        or code.co_names != reference.co_names
        or code.co_argcount != 2
        or code.co_kwonlyargcount
        or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    ):
        return None
    method = getattr(cls, 'isoformat', None)
    return method if isinstance(method, types.MethodDescriptorType) else None


class _Adapted:
    """An app adapter applied to a value: ``adapter(value, request)``."""

    __slots__ = ('adapter', 'request')

    def __init__(self, adapter: Callable[[Any, Any], Any], request: Any):
        self.adapter = adapter
        self.request = request

    def __call__(self, value: Any) -> Any:
        return self.adapter(value, self.request)


#: The classes whose values orjson writes exactly as the app's rules do
#: when it formats dates natively (see JSONEncoding.native_dates), and that
#: hold no other value: a batch whose values are all of these (or naive
#: datetimes) may be encoded without the datetime passthrough.
_NATIVE_SAFE = frozenset({str, int, float, bool, type(None), uuid.UUID, datetime.date})
#: Conversions that make a string.
_TO_STRING = frozenset({
    datetime.datetime.isoformat, datetime.date.isoformat, datetime.time.isoformat, str,
})


_NATIVE_VALUES = _NATIVE_SAFE | {datetime.datetime}


def _native_dicts(dicts: list) -> bool:
    """May orjson format the dates of these dicts itself (see
    :attr:`JSONEncoding.native_dates`)? Only when the first holds a
    datetime (otherwise there is nothing to gain), and every dict is a
    ``dict`` whose values are of :data:`_NATIVE_SAFE` classes or naive
    datetimes -- checked at C speed, a few tens of ns a value, where the
    ``default`` hook costs about half a µs a datetime. (Keys are written
    alike either way: orjson formats date keys itself in both.)"""
    if datetime.datetime not in set(map(type, dicts[0].values())):
        return False
    if set(map(type, dicts)) != {dict}:
        return False
    values = list(chain.from_iterable(map(dict.values, dicts)))
    return (
        set(map(type, values)) <= _NATIVE_VALUES
        # naive: a datetime's tzinfo is None (other values have none)
        and set(map(getattr, values, repeat('tzinfo'), repeat(None))) == {None}
    )


class _RowToDict:
    """Rows -> ``{column: value}`` dicts; the converters are made once per
    result (from its first row: rows of one result share their ``_parent``
    metadata, tuple rows their ``keys`` list).

    ``conversion(cls)`` is the encoding's :meth:`JSONEncoding.conversion`:
    the columns whose first value has a type the serializer would hand to
    its ``default`` hook (a built-in type, or one the app has an adapter
    for) are converted in the same pass, one comprehension per batch (the
    ``default`` hook costs several times more per value).

    With ``native`` (see :attr:`JSONEncoding.native_dates`), a result whose
    columns are all of :data:`_NATIVE_SAFE` classes, datetimes or strings
    once converted also gets a converter that checks every value and leaves
    naive datetimes for orjson to format: it sets ``unsafe`` when a value
    is of another class, and the batch is then encoded as usual.
    """

    __slots__ = ('source', 'convert', 'convert_many', 'checked_many', 'conversion',
                 'native', 'unsafe')

    def __init__(self):
        self.source: Any = None
        self.convert: Callable[[Any], dict] = dict
        self.convert_many: Callable[[list], list] = list
        self.checked_many: Callable[[list], list] | None = None
        self.conversion: Callable[[type], Callable[[Any], Any] | None] = lambda cls: None
        self.native = False
        self.unsafe = False

    def _decide(self, source: Any, fields, first) -> None:
        # the converters of the rows of ``source``, from its first row
        conversion = self.conversion
        columns: dict[int, tuple] = {}
        checked: dict[int, tuple] | None = {} if self.native else None
        for index, value in enumerate(first):
            cls = value.__class__
            convert = conversion(cls)
            if convert is not None:
                columns[index] = (_CONVERT, cls, convert)
            if checked is None:
                continue
            if cls is datetime.datetime and convert is datetime.datetime.isoformat:
                checked[index] = (_NAIVE, cls, None)
            elif cls in _NATIVE_SAFE and (convert is None or cls is datetime.date):
                checked[index] = (_RAW, cls, None)
            elif convert in _TO_STRING:
                checked[index] = (_CONVERT, cls, convert)
            else:  # a value orjson may not write as the app's rules do
                checked = None
        self.convert, self.convert_many = _row_converters(
            fields, columns, self._convert_value
        )
        self.checked_many = None if checked is None else _row_converters(
            fields, checked, self._convert_checked
        )[1]
        self.source = source

    def _converter(self, row) -> Callable[[Any], dict]:
        try:
            parent = row_result(row)
        except NOT_A_ROW:
            parent = None
        if parent is None or parent is not self.source:
            self._decide(parent, row._fields, row)
        return self.convert

    def _convert_value(self, value: Any) -> Any:
        convert = self.conversion(value.__class__)
        return value if convert is None else convert(value)

    def _convert_checked(self, value: Any) -> Any:
        value = self._convert_value(value)
        if value.__class__ not in _NATIVE_SAFE:
            self.unsafe = True
        return value

    def __call__(self, row) -> dict:
        return self._converter(row)(row)

    def _checked(self, rows: list, native: bool) -> tuple[list, bool]:
        # (dicts, whether orjson may format their dates natively)
        checked_many = self.checked_many
        if checked_many is None or not native:
            return self.convert_many(rows), False
        self.unsafe = False
        dicts = checked_many(rows)
        # unsafe: encoded with the passthrough, the datetimes left in the
        # dicts go through the default hook, as any dict's (same bytes)
        return dicts, not self.unsafe

    def many(self, rows: list, one_result: bool = False,
             native: bool = True) -> tuple[list, bool]:
        """Convert a list of rows at once: ``(dicts, native)``, ``native``
        when orjson may format their dates itself (if asked: ``native``).
        ``one_result``: the caller knows they all come from one result (no
        check per row)."""
        convert = self._converter(rows[0])
        parent = self.source
        if not one_result and parent is not None:
            try:  # C-speed check that they all come from one result
                one_result = set(map(row_result, rows)) == {parent}
            except NOT_A_ROW:  # not all rows
                pass
        if one_result:
            return self._checked(rows, native)
        try:
            return [convert(row) if row_result(row) is parent else self(row)
                    for row in rows], False
        except NOT_A_ROW:  # not all rows: leave them to the default hook
            return [self(row) if isinstance(row, Row) else row for row in rows], False

    def tuples(self, rows: Any, native: bool = True) -> tuple[list, bool]:
        """:meth:`many` for :class:`~tgstream.items.TupleRows`."""
        if rows.keys is not self.source:
            self._decide(rows.keys, rows.keys, rows[0])
        return self._checked(rows, native)


def _enum_value(member: enum.Enum) -> Any:
    return member.value


#: dict key types turned into strings (what orjson's OPT_NON_STR_KEYS does)
_KEY_CONVERTERS: tuple = (
    (datetime.datetime, datetime.datetime.isoformat),
    (datetime.date, datetime.date.isoformat),
    (datetime.time, datetime.time.isoformat),
    (uuid.UUID, str),
)


def _json_key(key: Any) -> Any:
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    for cls, convert in _KEY_CONVERTERS:
        if isinstance(key, cls):
            return convert(key)
    return key  # the encoder names the type


def string_keys(value: Any) -> Any:
    """``value`` with the dict keys JSON has no form for made strings
    (see the module docstring); containers are copied, nothing else."""
    if isinstance(value, dict):
        return {_json_key(k): string_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [string_keys(v) for v in value]
    return value


def _builtins() -> dict[type, Callable[[Any], Any]]:
    converters: dict[type, Callable[[Any], Any]] = {
        datetime.datetime: datetime.datetime.isoformat,
        datetime.date: datetime.date.isoformat,
        datetime.time: datetime.time.isoformat,
        decimal.Decimal: str,
        uuid.UUID: str,
        enum.Enum: _enum_value,
    }
    if Row is not None:
        converters[Row] = _RowToDict()
        converters[RowMapping] = dict
    return converters


def describe_type(obj: Any) -> str:
    cls = type(obj)
    return '%s.%s' % (cls.__module__, cls.__qualname__)


def unencodable(obj: Any) -> TypeError:
    """The error for a value no rule can encode."""
    name = describe_type(obj)
    if hasattr(obj, '_sa_instance_state'):
        return TypeError(
            '%s is an SQLAlchemy ORM instance and has no __json__(request) '
            'method and no JSON adapter: add a __json__(request) method to '
            'the class, register an adapter on the json renderer '
            '(JSON.add_adapter(%s, ...)), or stream Core rows '
            '(select(%s.id, ...))'
            % (name, type(obj).__name__, type(obj).__name__)
        )
    return TypeError(
        'Object of type %s is not JSON serializable: give it a '
        '__json__(request) method or register an adapter on the json '
        'renderer (pyramid.renderers.JSON.add_adapter)' % name
    )


def _has_adapter(components, cls: type) -> bool:
    return components.adapters.lookup((implementedBy(cls),), IJSONAdapter) is not None


def _adapted_classes(components) -> list[type]:
    """The classes the JSON renderer's adapters are registered for."""
    classes = []
    for registration in components.registeredAdapters():
        for spec in registration.required:
            cls = getattr(spec, 'inherit', None)  # implementedBy(cls).inherit
            if isinstance(cls, type):
                classes.append(cls)
    return classes


class JSONPlan:
    """What the JSON encoding of a stream takes from the app's configuration
    (its ``json`` renderer: serializer, options, adapters), decided once: a
    stream renderer builds it at its first stream and every
    :class:`JSONEncoding` of its streams reuses it (the decisions cost tens
    of microseconds; the per-stream part is a few objects).

    ``one_line`` drops an ``indent`` option (NDJSON, SSE).
    """

    def __init__(self, registry: Any, *, one_line: bool = False):
        renderer = registry.queryUtility(IRendererFactory, name='json')
        if not isinstance(renderer, JSON):
            renderer = _DEFAULT_RENDERER
        serializer, kw, components = json_renderer_parts(renderer)
        if one_line:
            kw.pop('indent', None)
        self.registry = registry
        self.serializer = serializer
        self.kw = kw
        self.components = components
        #: the built-in conversions the app has no adapter for (an app
        #: adapter takes precedence over a built-in)
        self.builtins = frozenset(
            cls for cls in _builtins() if not _has_adapter(components, cls))
        adapted = _adapted_classes(components)
        #: orjson may encode (UUIDs and enums it encodes itself: not when
        #: the app adapts them), see choose_codec
        self.orjson_can_follow = not any(
            issubclass(cls, (uuid.UUID, enum.Enum)) for cls in adapted)
        #: the default hook (so the adapters) must see dates and times
        self.dates_adapted = any(
            issubclass(cls, (datetime.date, datetime.time)) for cls in adapted)
        #: ... and their adapters are all isoformat() (see OrjsonCodec)
        self.dates_isoformat = _dates_are_isoformat(components)


def plan_of(renderer: Any, request: Any, *, one_line: bool = False) -> JSONPlan:
    """The :class:`JSONPlan` of ``renderer``'s streams: built at its first
    stream (after the configuration is committed, its adapters all added),
    then reused (kept in ``renderer.json_plans``)."""
    plans = renderer.json_plans
    if plans is None:
        plans = renderer.json_plans = {}
    plan = plans.get(one_line)
    if plan is None or plan.registry is not request.registry:
        plan = plans[one_line] = JSONPlan(request.registry, one_line=one_line)
    return plan


class JSONEncoding:
    """The JSON encoding of one stream (built per request).

    ``dumps(value) -> bytes`` encodes one value; ``dumps_batch(values) ->
    bytes`` encodes several, joined by :attr:`separator`, exactly as the
    ``dumps`` of each joined would be (one serializer call when it can).
    ``one_line`` drops an ``indent`` option so every document is one line
    (NDJSON, SSE).
    """

    def __init__(self, request, *, one_line: bool = False, plan: JSONPlan | None = None):
        if plan is None:
            plan = JSONPlan(request.registry, one_line=one_line)
        components = plan.components
        self.request = request
        builtins = plan.builtins
        self.converters = {
            cls: convert for cls, convert in _builtins().items() if cls in builtins
        }
        self._bases = tuple(self.converters.items())
        rows = self.converters.get(Row) if Row is not None else None
        self._rows: _RowToDict | None = rows if isinstance(rows, _RowToDict) else None
        self._lookup = components.adapters.lookup
        # per exact class: what the default hook does with its values
        self._by_class: dict[type, Callable[[Any], Any] | None] = {}
        self._conversions: dict[type, Callable[[Any], Any] | None] = {}
        self.default = self._make_default(components.adapters)
        self._native: tuple | None = None  # set once the codec is chosen
        #: how values become bytes: the app's serializer, the standard
        #: library's json, or orjson (see :func:`choose_codec`)
        self.codec: Codec = choose_codec(
            plan.serializer, plan.kw, self.default, components, self._prepare, plan
        )
        # the types the serializer encodes by itself (None: unknown, custom)
        self._native = self.codec.native
        #: orjson formats the dates of checked batches of rows itself (see
        #: :class:`OrjsonCodec`): the app's rule for them is isoformat()
        self.native_dates = getattr(self.codec, 'native_option', None) is not None
        if self._rows is not None:
            self._rows.conversion = self.conversion
            self._rows.native = self.native_dates

    @property
    def dumps(self) -> Callable[[Any], bytes]:
        """Encode one value (the chosen codec's ``dumps``)."""
        return self.codec.dumps

    @property
    def dumps_batch(self) -> Callable[[list], bytes]:
        """Encode several values, joined by :attr:`separator`."""
        return self.codec.dumps_batch

    @property
    def separator(self) -> bytes:
        return self.codec.separator

    @property
    def may_break_lines(self) -> bool:
        """Can a document span several lines (an ``indent``, a custom
        serializer)? NDJSON then checks each line."""
        return self.codec.may_break_lines

    # -- per-class conversions (whole columns of a batch) ---------------------

    def _class_conversion(self, cls: type) -> Callable[[Any], Any] | None:
        """What the default hook does with every value of exact class
        ``cls``, when that is decided by the class alone; ``None`` when the
        hook must look at each value (``__json__``, values that may declare
        interfaces of their own, no rule)."""
        convert = self.converters.get(cls)
        if convert is not None:  # exact built-in types come first
            return convert
        if (
            hasattr(cls, '__json__')
            or getattr(cls, '__dictoffset__', 1) != 0  # instances have a __dict__
            or any('__provides__' in getattr(k, '__slots__', ()) for k in cls.__mro__)
        ):
            return None
        # Without a __dict__ an instance provides what its class implements.
        adapter = self._lookup((implementedBy(cls),), IJSONAdapter)
        if adapter is not None:
            return _method_idiom(adapter, cls) or _Adapted(adapter, self.request)
        for base, convert in self._bases:  # subclasses of the built-in types
            if issubclass(cls, base):
                return convert
        return None

    def conversion(self, cls: type) -> Callable[[Any], Any] | None:
        """The function to apply to a value of exact class ``cls`` before
        the serializer sees it, or ``None`` to leave the value as it is.

        Byte-identical to the serializer calling the default hook: only
        types the serializer would hand to that hook are converted, exactly
        as the hook would (a built-in conversion, or the app's adapter).
        Lets a whole column of a batch be converted in one comprehension.
        """
        conversions = self._conversions
        try:
            return conversions[cls]
        except KeyError:
            pass
        native = self._native
        if cls is Row or cls is RowMapping:
            convert = None
        elif native is None:  # a custom serializer: the built-ins only
            convert = self.converters.get(cls)
        elif issubclass(cls, native):
            convert = None
        else:
            convert = self._class_conversion(cls)
        conversions[cls] = convert
        return convert

    # -- the default hook (Pyramid's order, then the built-ins) -------------

    def _make_default(self, adapters) -> Callable[[Any], Any]:
        request = self.request
        converters = self.converters
        bases = self._bases
        lookup = adapters.lookup
        by_class = self._by_class
        class_conversion = self._class_conversion

        def default(obj: Any) -> Any:
            cls = type(obj)
            try:
                convert = by_class[cls]
            except KeyError:
                convert = by_class[cls] = class_conversion(cls)
            if convert is not None and obj.__class__ is cls:
                return convert(obj)  # no adapter lookup per value
            convert = converters.get(obj.__class__)
            if convert is not None:  # exact built-in types have no __json__
                return convert(obj)
            if hasattr(obj, '__json__'):
                return obj.__json__(request)
            adapter = lookup((providedBy(obj),), IJSONAdapter)
            if adapter is not None:
                return adapter(obj, request)
            for cls, convert in bases:  # subclasses of the built-in types
                if isinstance(obj, cls):
                    return convert(obj)
            raise unencodable(obj)

        return default

    def prepare(self, values: list) -> list:
        """``values`` as the serializer should see them: rows of one result
        become dicts in one pass, and objects of one class with
        ``__json__`` their ``__json__(request)`` in one comprehension (much
        cheaper than a call of the default hook for each);
        :class:`~tgstream.items.TupleRows` become the dicts their rows
        would. The same bytes either way."""
        return self._prepare(values, False)[0]

    def _prepare(self, values: list, native: bool = True) -> tuple[list, bool]:
        # (:meth:`prepare`, whether orjson may format their dates natively,
        # when that is asked: ``native``)
        if not values:
            return values, False
        native = native and self.native_dates
        cls = values.__class__
        if cls is TupleRows:
            assert self._rows is not None  # see accepts_tuples
            return self._rows.tuples(values, native)
        cls = values[0].__class__
        if cls is Row:
            rows = self._rows
            if rows is not None:
                return rows.many(values, values.__class__ is ResultRows, native)
            return values, False
        if (
            self._native is not None
            and hasattr(cls, '__json__')
            and cls not in self.converters
            and not issubclass(cls, self._native)
            and set(map(type, values)) == {cls}
        ):
            request = self.request
            values = [value.__json__(request) for value in values]
            cls = values[0].__class__
        if cls is dict and native:
            return values, _native_dicts(values)
        return values, False

    @property
    def accepts_tuples(self) -> bool:
        """Can batches of :class:`~tgstream.items.TupleRows` be encoded
        (the built-in ``Row`` rule applies: the app has no adapter for
        ``Row``)?"""
        return self._rows is not None


# -- codecs: how one stream's values become bytes ------------------------------


class Codec:
    """Encode values to bytes with one serializer; ``dumps_batch`` gives
    exactly the ``dumps`` of each value joined by ``separator``."""

    #: the types the serializer encodes by itself (``None``: unknown)
    native: tuple | None = None
    separator: bytes = b','
    may_break_lines: bool = True

    #: ``values -> (values, native)``: :meth:`JSONEncoding.prepare`
    _prepare: Callable[[list], tuple[list, bool]]

    def dumps(self, value: Any) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def dumps_batch(self, values: list) -> bytes:
        return self.separator.join([self.dumps(value) for value in self._prepare(values)[0]])


class SerializerCodec(Codec):
    """The app's own ``serializer=`` (and its keyword arguments), with the
    default hook; its output may span lines."""

    def __init__(self, serializer: Callable[..., Any], default: Callable[[Any], Any], kw: dict,
                 prepare: Callable[[list], tuple[list, bool]]):
        self.serializer = serializer
        self.default = default
        self.kw = kw
        self._prepare = prepare

    def dumps(self, value: Any) -> bytes:
        data = self.serializer(value, default=self.default, **self.kw)
        return data.encode('utf-8') if isinstance(data, str) else bytes(data)


class StdlibCodec(Codec):
    """The standard library's ``json`` (the renderer's default serializer)."""

    native = _SELF_ENCODED

    def __init__(self, default: Callable[[Any], Any], kw: dict,
                 prepare: Callable[[list], tuple[list, bool]]):
        kw = dict(kw)
        cls = kw.pop('cls', None) or json.JSONEncoder
        encoder = cls(default=default, **kw)
        self._encode = encoder.encode
        self._prepare = prepare
        self.may_break_lines = encoder.indent is not None
        # Without indent, list elements encode exactly as alone, joined by
        # the item separator: one call per batch.
        self.whole_batches = encoder.indent is None
        if self.whole_batches:
            self.separator = encoder.item_separator.encode('utf-8')

    def encode(self, value: Any) -> str:
        try:
            return self._encode(value)
        except TypeError as exc:
            if not str(exc).startswith('keys must be'):
                raise
        # a date, UUID or Enum dict key: the same strings orjson makes
        return self._encode(string_keys(value))

    def dumps(self, value: Any) -> bytes:
        return self.encode(value).encode('utf-8')

    def dumps_batch(self, values: list) -> bytes:
        if not self.whole_batches:
            return super().dumps_batch(values)
        return self.encode(self._prepare(values)[0])[1:-1].encode('utf-8')


class OrjsonCodec(Codec):
    """orjson (the ``fast`` extra), for the default serializer without
    options: the same rules, compact UTF-8 output. A value orjson refuses
    (an integer beyond 64 bits, a lone surrogate, a ``time`` with a time
    zone) is encoded by ``fallback``.

    ``native_option``: when the app's adapters for ``datetime``, ``date`` and
    ``time`` are all the usual ``lambda obj, request: obj.isoformat()`` (or
    absent), the options that let orjson format them itself -- the same
    text as ``isoformat()`` except for a UTC offset with seconds, which
    orjson cuts to the minute; it is used for batches whose values are
    checked (see :class:`_RowToDict` and :func:`_native_dicts`). ``None``
    otherwise.
    """

    separator = b','
    may_break_lines = False

    def __init__(
        self, default: Callable[[Any], Any], fallback: StdlibCodec, components: Any,
        prepare: Callable[[list], tuple[list, bool]], plan: JSONPlan | None = None,
    ):
        native: tuple = (uuid.UUID,)
        if hasattr(orjson, 'Fragment'):
            native += (orjson.Fragment,)
        # Not OPT_NON_STR_KEYS: orjson would format a datetime key itself,
        # a UTC offset with seconds rounded to the minute; a dict with a
        # key that is not a str is encoded with its keys made strings by
        # string_keys (the stdlib codec's rule), see dumps().
        option = orjson.OPT_PASSTHROUGH_DATACLASS
        if plan is not None and plan.components is components:
            dates_adapted, dates_isoformat = plan.dates_adapted, plan.dates_isoformat
        else:
            dates_adapted = any(issubclass(cls, (datetime.date, datetime.time))
                                for cls in _adapted_classes(components))
            dates_isoformat = _dates_are_isoformat(components)
        if dates_adapted:
            # let the default hook (and so the adapters) see dates and times
            option |= orjson.OPT_PASSTHROUGH_DATETIME
        else:
            native += (datetime.datetime, datetime.date, datetime.time)
        self.native = _SELF_ENCODED + native
        self._dumps = orjson.dumps
        self._error = orjson.JSONEncodeError
        self.default = default
        self.option = option
        self.native_option: int | None = None
        if option & orjson.OPT_PASSTHROUGH_DATETIME and dates_isoformat:
            self.native_option = option & ~orjson.OPT_PASSTHROUGH_DATETIME
        self.fallback = fallback
        self._prepare = prepare

    # The fallbacks run outside the except blocks: a value that neither
    # encoder takes logs one clear error, not a chain of two.
    def dumps(self, value: Any) -> bytes:
        try:
            return self._dumps(value, self.default, self.option)
        except self._error:
            pass
        try:  # a key that is not a str: the keys as the stdlib codec makes them
            return self._dumps(string_keys(value), self.default,
                               self.option | orjson.OPT_NON_STR_KEYS)
        except self._error:
            pass
        return self.fallback.dumps(value)

    def dumps_batch(self, values: list) -> bytes:
        prepared, native = self._prepare(values)
        option: int = self.native_option if native and self.native_option is not None \
            else self.option
        try:
            return self._dumps(prepared, self.default, option)[1:-1]
        except self._error:
            pass
        try:  # keys that are not str (see dumps)
            return self._dumps(string_keys(prepared), self.default,
                               option | orjson.OPT_NON_STR_KEYS)[1:-1]
        except self._error:
            pass
        return b','.join([self.dumps(value) for value in prepared])


def _dates_are_isoformat(components: Any) -> bool:
    # Is what the app's rules make of every datetime, date and time value
    # their isoformat() (the usual adapter, or none and so the built-in)?
    for cls in (datetime.datetime, datetime.date, datetime.time):
        adapter = components.adapters.lookup((implementedBy(cls),), IJSONAdapter)
        if adapter is not None and _method_idiom(adapter, cls) is None:
            return False
    return True


def _orjson_can_follow(components: Any) -> bool:
    # orjson encodes UUIDs and enums itself and cannot be told not to:
    # an app adapter for them (or their subclasses) needs the stdlib.
    return not any(
        issubclass(cls, (uuid.UUID, enum.Enum)) for cls in _adapted_classes(components)
    )


def choose_codec(
    serializer: Callable[..., Any], kw: dict, default: Callable[[Any], Any],
    components: Any, prepare: Callable[[list], tuple[list, bool]],
    plan: JSONPlan | None = None,
) -> Codec:
    """The one place the JSON codec is chosen.

    - a ``serializer=`` other than ``json.dumps``: :class:`SerializerCodec`;
    - ``json.dumps`` with no options, orjson installed and no app adapter for
      a type orjson encodes itself: :class:`OrjsonCodec`;
    - otherwise: :class:`StdlibCodec`.
    """
    if serializer is not json.dumps:
        return SerializerCodec(serializer, default, kw, prepare)
    stdlib = StdlibCodec(default, kw, prepare)
    can_follow = (plan.orjson_can_follow if plan is not None and plan.components is components
                  else _orjson_can_follow(components))
    if orjson is not None and not kw and can_follow:
        return OrjsonCodec(default, stdlib, components, prepare, plan)
    return stdlib
