"""Read a `torch.save` file of arbitrary Python objects without running any of it.

A restricted unpickler: tensors and plain containers are rebuilt; every other global the pickle names
(a class, a function, `os.system`) becomes an inert `Record` class that remembers its name, and calling
it, as `__reduce__` would, only stores the arguments. Nothing from the file is imported or executed.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import BadInput


class Record:
    """What a pickle said about one object of a non-allow-listed class: its arguments and its state."""

    module: str = ""
    qualname: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Record":
        record = object.__new__(cls)
        record.args, record.kwargs, record.state, record.items, record.listitems = args, kwargs, None, {}, []
        return record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ kept everything

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "Record":
        """A call of something the file built (`getattr(obj, name)(...)`): recorded, never made."""
        return _record_class(type(self).module, type(self).qualname + "()")(self, *args, **kwargs)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.listitems.append(value)

    def extend(self, values: Any) -> None:
        self.listitems.extend(values)

    @classmethod
    def name(cls) -> str:
        return f"{cls.module}.{cls.qualname}"

    def attrs(self) -> dict[str, Any]:
        """The object's attributes (`__dict__` as pickled; the first half of a (dict, slots) state)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            state = {**(state[0] or {}), **(state[1] or {})}
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<record {self.name()}>"


def is_record(value: Any, *names: str) -> bool:
    """True when `value` is a record of one of the globals `names` ("module.qualname"), or any when none given."""
    return isinstance(value, Record) and (not names or type(value).name() in names)


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}


class _Storage:
    def __init__(self, flat: torch.Tensor):
        self.flat = flat


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> torch.Tensor:
    if not isinstance(storage, _Storage) or not all(isinstance(v, tuple) for v in (size, stride)):
        raise BadInput("a tensor in the file does not point at stored data")
    size, stride = tuple(int(v) for v in size), tuple(int(v) for v in stride)
    if any(v < 0 for v in size + stride) or int(offset) < 0:
        raise BadInput("a tensor in the file has a negative size, stride or offset")
    last = int(offset) + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else -1
    if last >= storage.flat.numel():
        raise BadInput("a tensor in the file reaches past its stored data")
    return storage.flat.as_strided(size, stride, int(offset))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    """A tensor subclass (fastai's TensorImage...): the plain tensor; the subclass is not needed."""
    if func is _rebuild_tensor and isinstance(args, tuple):
        return _rebuild_tensor(*args)
    return _record_class("torch._tensor", "_rebuild_from_type_v2")(func, new_type, args, state)


def _latin1(text: Any, encoding: Any = "utf-8") -> Any:
    """`_codecs.encode`, which protocol-2 pickles use for bytes; only the latin-1 form they write."""
    if isinstance(text, str) and encoding in ("latin1", "latin-1"):
        return text.encode("latin1")
    return _record_class("_codecs", "encode")(text, encoding)


PLAIN_TYPES = (str, int, float, bool, list, tuple, dict, set, frozenset, bytes, type(None))


def _plain(kind: type) -> Callable[..., Any]:
    """A builtin constructor, for plain arguments only; anything else is recorded, not made."""

    def build(*args: Any) -> Any:
        plain = len(args) <= 1 and all(type(arg) in PLAIN_TYPES for arg in args)
        sized = kind is bytes and bool(args) and isinstance(args[0], int)  # bytes(10**12) allocates a terabyte
        return kind(*args) if plain and not sized else _record_class("builtins", kind.__name__)(*args)

    return build


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("_codecs", "encode"): _latin1,
    **{(module, kind.__name__): _plain(kind) for module in ("builtins", "__builtin__")
       for kind in (set, frozenset, tuple, list, dict, bytes, float, int, bool, str, complex)},
    **{(module, name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()
       for module in ("torch", "torch.storage")},
}
_RECORD_CLASSES: dict[tuple[str, str], type] = {}


def _record_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _RECORD_CLASSES:
        _RECORD_CLASSES[key] = type("Record", (Record,), {"module": module, "qualname": name})
    return _RECORD_CLASSES[key]


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, read_storage: Callable[[str, torch.dtype], _Storage]):
        super().__init__(file, encoding="utf-8")
        self.read_storage = read_storage

    def find_class(self, module: str, name: str) -> Any:
        return ALLOWED.get((module, name)) or _record_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise BadInput(f"an unexpected reference to stored data ({type(pid).__name__})")
        return self.read_storage(str(pid[2]), pid[1].dtype)


def load(path: str | Path) -> Any:
    """The object a `torch.save` zip file holds, with records in place of everything not allow-listed."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise BadInput(f"{path} is not a torch zip file ({error})") from None
    with archive:
        names = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
        if len(names) != 1:
            raise BadInput(f"{path} is a zip file but not one torch.save wrote (no single data.pkl)")
        prefix = names[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}

        def read_storage(key: str, dtype: torch.dtype) -> _Storage:
            if key not in storages:
                try:
                    data = archive.read(f"{prefix}data/{key}")
                except KeyError:
                    raise BadInput(f"stored tensor data {key!r} is missing") from None
                itemsize = torch.empty((), dtype=dtype).element_size()
                usable = len(data) - len(data) % itemsize
                flat = torch.frombuffer(bytearray(data[:usable]), dtype=dtype) if usable else torch.empty(0, dtype=dtype)
                storages[key] = _Storage(flat)
            return storages[key]

        try:
            return _Unpickler(io.BytesIO(archive.read(names[0])), read_storage).load()
        except BadInput as error:  # a tensor pointing outside its data, missing data
            raise BadInput(f"{path} is damaged: {error}") from None
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError, RuntimeError, OverflowError, MemoryError, RecursionError) as error:
            reason = " ".join(str(error).split()[:20]) or type(error).__name__
            raise BadInput(f"{path} is damaged: its pickle cannot be read ({reason})") from None
