//! A minimal, non-executing unpickler for the `data.pkl` that `torch.save(state_dict)` writes.
//!
//! Nothing is ever imported or called: `GLOBAL`/`STACK_GLOBAL` resolve only the handful of names
//! in [`resolve_global`], and `REDUCE`/`NEWOBJ`/`BINPERSID` interpret those names by hand. Every
//! other global is an error naming it.
//!
//! Objects live in an arena (`Vec<Obj>`) and the stack and memo hold indices into it, so `BINGET`
//! never copies, cycles are harmless, and memory is linear in the number of opcodes executed.
//! Every count is capped (see the `MAX_*` constants), every length is checked against the
//! remaining bytes before anything is allocated, and nothing recurses.
//!
//! Opcode semantics follow CPython's `Lib/pickle.py` (`_Unpickler.load_*`,
//! <https://github.com/python/cpython/blob/v3.12.0/Lib/pickle.py#L1150>); the tensor record follows
//! `torch._utils._rebuild_tensor_v2` and the persistent id `('storage', storage_type, key,
//! location, numel)` written by `torch/serialization.py` (`_save`, `persistent_id`).

use std::collections::{HashMap, HashSet};

pub use super::pickle_error::PickleError;
use super::TorchDtype;

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// Most values on the stack at once.
const MAX_STACK: usize = 1 << 20;
/// Most nested `MARK`s open at once (a state dict needs 3).
const MAX_MARKS: usize = 1 << 10;
/// Most memo entries.
const MAX_MEMO: usize = 1 << 21;
/// Most objects created in one pickle (a tensor record costs about 20).
const MAX_OBJECTS: usize = 1 << 21;
/// Most dimensions of one tensor.
const MAX_NDIM: usize = 64;
/// Most shape + stride entries materialised over the whole pickle (bounds `Vec` copies).
const MAX_DIMS_TOTAL: usize = 1 << 24;
/// Longest `GLOBAL` module or name line.
const MAX_GLOBAL_LINE: usize = 256;
/// Longest storage key.
const MAX_STORAGE_KEY: usize = 256;
/// Highest pickle protocol accepted by `PROTO`.
const MAX_PROTOCOL: u8 = 5;

// ---------------------------------------------------------------------------------------------
// Opcodes (CPython `Lib/pickle.py`)
// ---------------------------------------------------------------------------------------------

const MARK: u8 = b'(';
const STOP: u8 = b'.';
const BINFLOAT: u8 = b'G';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINPERSID: u8 = b'Q';
const REDUCE: u8 = b'R';
const SHORT_BINSTRING: u8 = b'U';
const BINUNICODE: u8 = b'X';
const APPEND: u8 = b'a';
const BUILD: u8 = b'b';
const GLOBAL: u8 = b'c';
const APPENDS: u8 = b'e';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const EMPTY_LIST: u8 = b']';
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const SETITEM: u8 = b's';
const TUPLE: u8 = b't';
const SETITEMS: u8 = b'u';
const EMPTY_DICT: u8 = b'}';
const EMPTY_TUPLE: u8 = b')';
const PROTO: u8 = 0x80;
const NEWOBJ: u8 = 0x81;
const TUPLE1: u8 = 0x85;
const TUPLE2: u8 = 0x86;
const TUPLE3: u8 = 0x87;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE8: u8 = 0x8d;
const STACK_GLOBAL: u8 = 0x93;
const MEMOIZE: u8 = 0x94;
const FRAME: u8 = 0x95;

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// One state-dict entry as the pickle describes it; not yet checked against the zip.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawTensor {
    /// State-dict key.
    pub name: String,
    /// Element type of the storage (and so of the tensor).
    pub dtype: TorchDtype,
    /// Storage file name under `<prefix>/data/`.
    pub storage_key: String,
    /// Storage length in elements of `dtype`, as the persistent id declares it.
    pub storage_numel: u64,
    /// `storage_offset`, in elements.
    pub offset: u64,
    /// `size()`.
    pub shape: Vec<u64>,
    /// `stride()`, in elements; same length as `shape`.
    pub stride: Vec<u64>,
}

/// Runs the pickle and returns the state dict's entries in insertion order.
pub(crate) fn parse_state_dict(data: &[u8]) -> Result<Vec<RawTensor>> {
    let mut u = Unpickler::new(data);
    let root = u.run()?;
    u.state_dict(root)
}

// ---------------------------------------------------------------------------------------------
// Object model
// ---------------------------------------------------------------------------------------------

type Id = usize;

/// The only globals a torch state dict needs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
    /// `torch.FloatStorage` etc., and `torch.UntypedStorage` (bytes).
    StorageType(TorchDtype),
    /// `torch.float32` etc.
    Dtype(TorchDtype),
}

impl Global {
    /// The callable's dotted name, for errors.
    fn name(self) -> &'static str {
        match self {
            Global::OrderedDict => "collections.OrderedDict",
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2",
            Global::RebuildParameter => "torch._utils._rebuild_parameter",
            Global::RebuildParameterWithState => "torch._utils._rebuild_parameter_with_state",
            Global::StorageType(_) => "a torch storage class",
            Global::Dtype(_) => "a torch dtype",
        }
    }
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Some(Global::RebuildParameterWithState)
        }
        ("torch", "UntypedStorage") | ("torch.storage", "UntypedStorage") => {
            Some(Global::StorageType(TorchDtype::U8))
        }
        ("torch", name) => TorchDtype::from_storage_class(name)
            .map(Global::StorageType)
            .or_else(|| TorchDtype::from_torch_name(name).map(Global::Dtype)),
        _ => None,
    }
}

#[derive(Debug)]
struct Storage {
    dtype: TorchDtype,
    key: String,
    numel: u64,
}

#[derive(Debug)]
struct Tensor {
    storage: Id,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// A float's value is never needed (only `_metadata` holds floats).
    Float,
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(Storage),
    Tensor(Tensor),
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::None => "none",
            Obj::Bool(_) => "bool",
            Obj::Int(_) => "int",
            Obj::Float => "float",
            Obj::Str(_) => "str",
            Obj::Tuple(_) => "tuple",
            Obj::List(_) => "list",
            Obj::Dict(_) => "dict",
            Obj::Global(_) => "global",
            Obj::Storage(_) => "storage",
            Obj::Tensor(_) => "tensor",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Machine
// ---------------------------------------------------------------------------------------------

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed (for errors).
    op_at: usize,
    op: u8,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    /// Stack heights at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    /// Shape + stride entries materialised so far.
    dims_total: usize,
}

type Result<T> = std::result::Result<T, PickleError>;

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler {
            data,
            pos: 0,
            op_at: 0,
            op: 0,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            dims_total: 0,
        }
    }

    // -- errors --------------------------------------------------------------------------------

    fn limit(&self, what: &'static str, limit: usize) -> PickleError {
        PickleError::LimitExceeded {
            offset: self.op_at,
            what,
            limit,
        }
    }

    fn wrong(&self, expected: &'static str) -> PickleError {
        PickleError::WrongType {
            offset: self.op_at,
            opcode: self.op,
            expected,
        }
    }

    fn bad_call(&self, callable: &'static str, reason: &'static str) -> PickleError {
        PickleError::BadCall {
            offset: self.op_at,
            callable,
            reason,
        }
    }

    // -- input ---------------------------------------------------------------------------------

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data = self.data;
        let rest = &data[self.pos..];
        if n > rest.len() {
            return Err(PickleError::Truncated { offset: self.op_at });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take_array()?))
    }

    /// A length prefix, checked against the remaining input before anything is allocated.
    fn len_checked(&self, len: u64) -> Result<usize> {
        let remaining = self.data.len() - self.pos;
        match usize::try_from(len) {
            Ok(n) if n <= remaining => Ok(n),
            _ => Err(PickleError::Truncated { offset: self.op_at }),
        }
    }

    fn utf8(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| PickleError::InvalidUtf8 { offset: self.op_at })
    }

    /// One `GLOBAL` operand line, without its newline.
    fn line(&mut self) -> Result<&'a str> {
        let data = self.data;
        let rest = &data[self.pos..];
        let window = &rest[..rest.len().min(MAX_GLOBAL_LINE + 1)];
        let bad = PickleError::BadGlobalLine { offset: self.op_at };
        let end = window.iter().position(|&b| b == b'\n').ok_or(bad.clone())?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| bad)
    }

    // -- stack ---------------------------------------------------------------------------------

    fn alloc(&mut self, obj: Obj) -> Result<Id> {
        if self.objs.len() >= MAX_OBJECTS {
            return Err(self.limit("objects", MAX_OBJECTS));
        }
        self.objs.push(obj);
        Ok(self.objs.len() - 1)
    }

    fn push_id(&mut self, id: Id) -> Result<()> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.limit("stack", MAX_STACK));
        }
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, obj: Obj) -> Result<()> {
        let id = self.alloc(obj)?;
        self.push_id(id)
    }

    /// Lowest stack index usable by plain pops (everything above the last mark).
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id> {
        let id = self.top()?;
        self.stack.pop();
        Ok(id)
    }

    /// The top of the stack, which must lie above the last mark.
    fn top(&self) -> Result<Id> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err(PickleError::StackUnderflow {
                offset: self.op_at,
                opcode: self.op,
            }),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let mark = self.marks.pop().ok_or(PickleError::MissingMark {
            offset: self.op_at,
            opcode: self.op,
        })?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, index: u32) -> Result<()> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(self.limit("memo", MAX_MEMO));
        }
        self.memo.insert(index, id);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<()> {
        let id = *self.memo.get(&index).ok_or(PickleError::MissingMemo {
            offset: self.op_at,
            index,
        })?;
        self.push_id(id)
    }

    // -- typed access --------------------------------------------------------------------------

    fn as_str(&self, id: Id) -> Option<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_int(&self, id: Id) -> Option<i64> {
        match self.objs[id] {
            Obj::Int(v) => Some(v),
            Obj::Bool(b) => Some(i64::from(b)),
            _ => None,
        }
    }

    fn as_tuple(&self, id: Id) -> Option<&[Id]> {
        match &self.objs[id] {
            Obj::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// A tuple of non-negative ints (a shape or stride).
    fn dims(&self, id: Id, callable: &'static str, what: &'static str) -> Result<Vec<u64>> {
        let items = self.as_tuple(id).ok_or(self.bad_call(callable, what))?;
        if items.len() > MAX_NDIM {
            return Err(self.limit("ndim", MAX_NDIM));
        }
        items
            .iter()
            .map(|&i| {
                self.as_int(i)
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or(self.bad_call(callable, what))
            })
            .collect()
    }

    // -- main loop -----------------------------------------------------------------------------

    /// Executes opcodes until `STOP` and returns the object it pops.
    fn run(&mut self) -> Result<Id> {
        loop {
            self.op_at = self.pos;
            self.op = self.u8()?;
            match self.op {
                PROTO => {
                    let protocol = self.u8()?;
                    if protocol > MAX_PROTOCOL {
                        return Err(PickleError::UnsupportedProtocol {
                            offset: self.op_at,
                            protocol,
                        });
                    }
                }
                FRAME => {
                    // Framing only groups opcodes for buffered reads; the frame must fit.
                    let len = self.u64()?;
                    self.len_checked(len)?;
                }
                STOP => return self.pop(),

                // -- atoms ---------------------------------------------------------------------
                NONE => self.push(Obj::None)?,
                NEWTRUE => self.push(Obj::Bool(true))?,
                NEWFALSE => self.push(Obj::Bool(false))?,
                BININT => {
                    let v = i32::from_le_bytes(self.take_array()?);
                    self.push(Obj::Int(i64::from(v)))?;
                }
                BININT1 => {
                    let v = self.u8()?;
                    self.push(Obj::Int(i64::from(v)))?;
                }
                BININT2 => {
                    let v = u16::from_le_bytes(self.take_array()?);
                    self.push(Obj::Int(i64::from(v)))?;
                }
                LONG1 => {
                    let n = usize::from(self.u8()?);
                    let bytes = self.take(n)?;
                    let v = long1(bytes).ok_or(PickleError::IntTooLarge { offset: self.op_at })?;
                    self.push(Obj::Int(v))?;
                }
                BINFLOAT => {
                    self.take(8)?;
                    self.push(Obj::Float)?;
                }
                SHORT_BINUNICODE | SHORT_BINSTRING => {
                    let n = usize::from(self.u8()?);
                    let s = self.utf8(n)?;
                    self.push(Obj::Str(s))?;
                }
                BINUNICODE => {
                    let n = self.u32()?;
                    let n = self.len_checked(u64::from(n))?;
                    let s = self.utf8(n)?;
                    self.push(Obj::Str(s))?;
                }
                BINUNICODE8 => {
                    let n = self.u64()?;
                    let n = self.len_checked(n)?;
                    let s = self.utf8(n)?;
                    self.push(Obj::Str(s))?;
                }

                // -- containers ----------------------------------------------------------------
                EMPTY_DICT => self.push(Obj::Dict(Vec::new()))?,
                EMPTY_LIST => self.push(Obj::List(Vec::new()))?,
                EMPTY_TUPLE => self.push(Obj::Tuple(Vec::new()))?,
                MARK => {
                    if self.marks.len() >= MAX_MARKS {
                        return Err(self.limit("marks", MAX_MARKS));
                    }
                    self.marks.push(self.stack.len());
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(self.op - TUPLE1) + 1;
                    let mut items = vec![0; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop()?;
                    }
                    self.push(Obj::Tuple(items))?;
                }
                APPEND => {
                    let value = self.pop()?;
                    let list = self.top()?;
                    self.list_mut(list)?.push(value);
                }
                APPENDS => {
                    let values = self.pop_mark()?;
                    let list = self.top()?;
                    self.list_mut(list)?.extend(values);
                }
                SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.dict_mut(dict)?.push((key, value));
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.wrong("key/value pairs"));
                    }
                    let dict = self.top()?;
                    let entries = self.dict_mut(dict)?;
                    entries.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                }

                // -- memo ----------------------------------------------------------------------
                BINPUT => {
                    let index = self.u8()?;
                    self.memo_put(u32::from(index))?;
                }
                LONG_BINPUT => {
                    let index = self.u32()?;
                    self.memo_put(index)?;
                }
                MEMOIZE => {
                    let index =
                        u32::try_from(self.memo.len()).map_err(|_| self.limit("memo", MAX_MEMO))?;
                    self.memo_put(index)?;
                }
                BINGET => {
                    let index = self.u8()?;
                    self.memo_get(u32::from(index))?;
                }
                LONG_BINGET => {
                    let index = self.u32()?;
                    self.memo_get(index)?;
                }

                // -- globals and calls ---------------------------------------------------------
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let global = self.resolve(module, name)?;
                    self.push(Obj::Global(global))?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let global = match (self.as_str(module), self.as_str(name)) {
                        (Some(module), Some(name)) => self.resolve(module, name)?,
                        _ => return Err(self.wrong("module and name strings")),
                    };
                    self.push(Obj::Global(global))?;
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let result = self.call(callable, args)?;
                    self.push_id(result)?;
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let result = self.new_object(cls, args)?;
                    self.push_id(result)?;
                }
                BUILD => {
                    let _state = self.pop()?;
                    let obj = self.top()?;
                    // An `OrderedDict` state dict carries `_metadata` as instance state: it has no
                    // tensors, so it is dropped. Nothing else in a state dict is built.
                    if !matches!(self.objs[obj], Obj::Dict(_)) {
                        return Err(self.wrong("an OrderedDict to BUILD"));
                    }
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.push(Obj::Storage(storage))?;
                }
                opcode => {
                    return Err(PickleError::UnknownOpcode {
                        offset: self.op_at,
                        opcode,
                    })
                }
            }
        }
    }

    fn list_mut(&mut self, id: Id) -> Result<&mut Vec<Id>> {
        let err = self.wrong("a list");
        match &mut self.objs[id] {
            Obj::List(items) => Ok(items),
            _ => Err(err),
        }
    }

    fn dict_mut(&mut self, id: Id) -> Result<&mut Vec<(Id, Id)>> {
        let err = self.wrong("a dict");
        match &mut self.objs[id] {
            Obj::Dict(entries) => Ok(entries),
            _ => Err(err),
        }
    }

    fn resolve(&self, module: &str, name: &str) -> Result<Global> {
        resolve_global(module, name).ok_or_else(|| PickleError::ForbiddenGlobal {
            offset: self.op_at,
            module: module.to_owned(),
            name: name.to_owned(),
        })
    }

    /// `REDUCE`: `callable(*args)` for the allowed callables.
    fn call(&mut self, callable: Id, args: Id) -> Result<Id> {
        let Obj::Global(global) = self.objs[callable] else {
            return Err(self.wrong("a global to call"));
        };
        // Arity is checked before copying, so a huge memoized tuple cannot be copied repeatedly.
        let args = match self.as_tuple(args) {
            Some(args) if args.len() <= 7 => args.to_vec(),
            Some(_) => return Err(self.bad_call(global.name(), "too many arguments")),
            None => return Err(self.wrong("an argument tuple")),
        };
        let name = global.name();
        match global {
            Global::OrderedDict if args.is_empty() => self.alloc(Obj::Dict(Vec::new())),
            Global::OrderedDict => Err(self.bad_call(name, "expected no arguments")),
            Global::RebuildTensorV2 => self.rebuild_tensor(&args),
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                // (data, requires_grad, backward_hooks[, state]); only `data` matters.
                let arity = if global == Global::RebuildParameter {
                    3
                } else {
                    4
                };
                if args.len() != arity {
                    return Err(self.bad_call(name, "wrong number of arguments"));
                }
                match self.objs[args[0]] {
                    Obj::Tensor(_) => Ok(args[0]),
                    _ => Err(self.bad_call(name, "data is not a tensor")),
                }
            }
            Global::StorageType(_) | Global::Dtype(_) => Err(self.wrong("a callable global")),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`; the last three do not affect the values and are ignored.
    fn rebuild_tensor(&mut self, args: &[Id]) -> Result<Id> {
        const NAME: &str = "torch._utils._rebuild_tensor_v2"; // = Global::RebuildTensorV2.name()
        if !(6..=7).contains(&args.len()) {
            return Err(self.bad_call(NAME, "expected 6 or 7 arguments"));
        }
        if !matches!(self.objs[args[0]], Obj::Storage(_)) {
            return Err(self.bad_call(NAME, "first argument is not a storage"));
        }
        let offset = self
            .as_int(args[1])
            .and_then(|v| u64::try_from(v).ok())
            .ok_or(self.bad_call(NAME, "storage_offset is not a non-negative int"))?;
        let shape = self.dims(args[2], NAME, "size is not a tuple of non-negative ints")?;
        let stride = self.dims(args[3], NAME, "stride is not a tuple of non-negative ints")?;
        if shape.len() != stride.len() {
            return Err(self.bad_call(NAME, "size and stride differ in length"));
        }
        self.charge_dims(shape.len() * 2)?;
        self.alloc(Obj::Tensor(Tensor {
            storage: args[0],
            offset,
            shape,
            stride,
        }))
    }

    fn charge_dims(&mut self, n: usize) -> Result<()> {
        self.dims_total += n;
        if self.dims_total > MAX_DIMS_TOTAL {
            return Err(self.limit("dimensions", MAX_DIMS_TOTAL));
        }
        Ok(())
    }

    /// `NEWOBJ`: `cls.__new__(cls, *args)`; only `OrderedDict()` is allowed.
    fn new_object(&mut self, cls: Id, args: Id) -> Result<Id> {
        let is_ordered_dict = matches!(self.objs[cls], Obj::Global(Global::OrderedDict));
        let no_args = self.as_tuple(args).is_some_and(<[Id]>::is_empty);
        if !is_ordered_dict || !no_args {
            return Err(self.bad_call("NEWOBJ", "only OrderedDict() can be created"));
        }
        self.alloc(Obj::Dict(Vec::new()))
    }

    /// `BINPERSID` with torch's `('storage', storage_type, key, location, numel)`.
    fn persistent_load(&self, pid: Id) -> Result<Storage> {
        const NAME: &str = "persistent_load";
        let fields = self
            .as_tuple(pid)
            .ok_or(self.bad_call(NAME, "persistent id is not a tuple"))?;
        let &[tag, storage_type, key, location, numel] = fields else {
            return Err(self.bad_call(NAME, "persistent id is not a 5-tuple"));
        };
        if self.as_str(tag) != Some("storage") {
            return Err(self.bad_call(NAME, "persistent id tag is not 'storage'"));
        }
        let dtype = match self.objs[storage_type] {
            Obj::Global(Global::StorageType(d) | Global::Dtype(d)) => d,
            _ => return Err(self.bad_call(NAME, "storage type is not a torch storage class")),
        };
        let key = self
            .as_str(key)
            .ok_or(self.bad_call(NAME, "storage key is not a string"))?;
        if key.len() > MAX_STORAGE_KEY {
            return Err(self.limit("storage key", MAX_STORAGE_KEY));
        }
        if self.as_str(location).is_none() {
            return Err(self.bad_call(NAME, "storage location is not a string"));
        }
        let numel = self
            .as_int(numel)
            .and_then(|v| u64::try_from(v).ok())
            .ok_or(self.bad_call(NAME, "storage numel is not a non-negative int"))?;
        Ok(Storage {
            dtype,
            key: key.to_owned(),
            numel,
        })
    }

    // -- result --------------------------------------------------------------------------------

    /// Reads the top-level dict as `name -> tensor`, in insertion order.
    fn state_dict(&self, root: Id) -> Result<Vec<RawTensor>> {
        let Obj::Dict(entries) = &self.objs[root] else {
            return Err(PickleError::NotAStateDict {
                found: self.objs[root].kind(),
            });
        };
        let mut seen = HashSet::new();
        let mut dims_total = self.dims_total;
        let mut out = Vec::with_capacity(entries.len());
        for (index, &(key, value)) in entries.iter().enumerate() {
            let name = self
                .as_str(key)
                .ok_or(PickleError::NonStringKey { index })?;
            if !seen.insert(name) {
                return Err(PickleError::DuplicateName {
                    name: name.to_owned(),
                });
            }
            let Obj::Tensor(t) = &self.objs[value] else {
                return Err(PickleError::NotATensor {
                    name: name.to_owned(),
                    found: self.objs[value].kind(),
                });
            };
            let Obj::Storage(s) = &self.objs[t.storage] else {
                return Err(PickleError::NotATensor {
                    name: name.to_owned(),
                    found: self.objs[t.storage].kind(),
                });
            };
            dims_total += t.shape.len() * 2;
            if dims_total > MAX_DIMS_TOTAL {
                return Err(PickleError::LimitExceeded {
                    offset: self.data.len(),
                    what: "dimensions",
                    limit: MAX_DIMS_TOTAL,
                });
            }
            out.push(RawTensor {
                name: name.to_owned(),
                dtype: s.dtype,
                storage_key: s.key.clone(),
                storage_numel: s.numel,
                offset: t.offset,
                shape: t.shape.clone(),
                stride: t.stride.clone(),
            });
        }
        Ok(out)
    }
}

/// A `LONG1` payload: little-endian two's complement, at most 8 bytes.
fn long1(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 8 {
        return None;
    }
    let Some(&last) = bytes.last() else {
        return Some(0);
    };
    let fill = if last & 0x80 != 0 { 0xff } else { 0 };
    let mut buf = [fill; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Some(i64::from_le_bytes(buf))
}
