//! Static import extraction: which modules a Python source file imports, found by parsing it
//! rather than running it, so the import graph can be built (and rebuilt on every save) without
//! executing user code.

use ruff_python_ast::visitor::{Visitor, walk_expr, walk_stmt};
use ruff_python_ast::{
    Arguments, Expr, ExprAttribute, ExprCall, ExprName, ModModule, Number, Stmt, StmtFunctionDef,
    StmtIf, StmtImportFrom, UnaryOp,
};
use ruff_python_parser::Parsed;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRef {
    /// Absolute dotted module name (relative imports already resolved), e.g. "pkg.sub".
    pub module: String,
    /// For `from X import a, b`: ["a", "b"] (they may be submodules of X, the caller decides); empty for `import X` and for `from X import *`.
    pub names: Vec<String>,
    /// True when the import runs only when a function is called (inside `def`/`async def`/lambda bodies), false when it runs at import time (module level, including inside if/try/with/for/while and class bodies at module level).
    pub lazy: bool,
}

/// `module_name` is the dotted name of the file's module; `is_package` is true for `__init__.py`.
/// Errors: a syntax error gives Err with a short message ("line N: ...").
pub fn parse_imports(
    source: &str,
    module_name: &str,
    is_package: bool,
) -> Result<Vec<ImportRef>, String> {
    let parsed = parse_source(source)?;
    Ok(imports_of_suite(parsed.suite(), module_name, is_package))
}

/// Parses a module once so that several passes (imports, reads) can share the tree.
/// Errors: a syntax error gives Err with a short message ("line N: ...").
pub fn parse_source(source: &str) -> Result<Parsed<ModModule>, String> {
    ruff_python_parser::parse_module(source).map_err(|err| {
        let line = line_of(source, err.location.start().to_usize());
        format!("line {line}: {}", err.error)
    })
}

/// [`parse_imports`] on an already parsed module body.
pub fn imports_of_suite(suite: &[Stmt], module_name: &str, is_package: bool) -> Vec<ImportRef> {
    let mut collector = Collector {
        module_name,
        package: current_package(module_name, is_package),
        lazy: false,
        refs: Vec::new(),
    };
    collector.visit_body(suite);
    collector.refs
}

/// The package that relative imports are resolved against (`__package__` at run time); `None`
/// for a top-level plain module, where every relative import fails.
pub(crate) fn current_package(module_name: &str, is_package: bool) -> Option<&str> {
    if module_name.is_empty() {
        None
    } else if is_package {
        Some(module_name)
    } else {
        module_name.rsplit_once('.').map(|(parent, _)| parent)
    }
}

/// Same algorithm as `importlib._bootstrap._resolve_name`, returning `None` where Python raises
/// "attempted relative import beyond top-level package".
pub(crate) fn resolve_relative(package: Option<&str>, level: usize, rest: &str) -> Option<String> {
    let package = package.filter(|p| !p.is_empty())?;
    debug_assert!(level >= 1);
    let mut base = package;
    for _ in 1..level {
        base = base.rsplit_once('.')?.0;
    }
    Some(if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}.{rest}")
    })
}

/// Names coming from string literals are unchecked by the parser; junk such as `"a..b"` or
/// `"foo/bar"` would otherwise become bogus graph nodes.
pub(crate) fn is_dotted_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// 1-based; counts `\n`, `\r\n` and lone `\r` as Python's tokenizer does.
fn line_of(source: &str, offset: usize) -> usize {
    let bytes = &source.as_bytes()[..offset.min(source.len())];
    let mut line = 1;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            line += 1;
        }
    }
    line
}

fn is_type_checking(expr: &Expr) -> bool {
    match expr {
        Expr::Name(ExprName { id, .. }) => id.as_str() == "TYPE_CHECKING",
        Expr::Attribute(ExprAttribute { attr, .. }) => attr.as_str() == "TYPE_CHECKING",
        _ => false,
    }
}

pub(crate) enum Guard {
    /// `if TYPE_CHECKING:` — the body never runs.
    TypeChecking,
    /// `if not TYPE_CHECKING:` — the body always runs and every later branch never does.
    NotTypeChecking,
    Other,
}

pub(crate) fn guard_of(test: &Expr) -> Guard {
    match test {
        _ if is_type_checking(test) => Guard::TypeChecking,
        Expr::UnaryOp(op) if op.op == UnaryOp::Not && is_type_checking(&op.operand) => {
            Guard::NotTypeChecking
        }
        _ => Guard::Other,
    }
}

pub(crate) fn string_literal(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::StringLiteral(lit) => Some(lit.value.to_str()),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DynamicImport {
    ImportModule,
    DunderImport,
}

fn dynamic_import_kind(func: &Expr) -> Option<DynamicImport> {
    match func {
        Expr::Name(ExprName { id, .. }) => match id.as_str() {
            "import_module" => Some(DynamicImport::ImportModule),
            "__import__" => Some(DynamicImport::DunderImport),
            _ => None,
        },
        Expr::Attribute(ExprAttribute { value, attr, .. }) if attr.as_str() == "import_module" => {
            matches!(&**value, Expr::Name(ExprName { id, .. }) if id.as_str() == "importlib")
                .then_some(DynamicImport::ImportModule)
        }
        _ => None,
    }
}

struct Collector<'s> {
    module_name: &'s str,
    package: Option<&'s str>,
    lazy: bool,
    refs: Vec<ImportRef>,
}

impl<'s> Collector<'s> {
    fn push(&mut self, module: String, names: Vec<String>, lazy: bool) {
        let lazy = self.lazy || lazy;
        // Linear dedup: a file has tens of imports, so this beats hashing every ref.
        if !self
            .refs
            .iter()
            .any(|r| r.lazy == lazy && r.module == module && r.names == names)
        {
            self.refs.push(ImportRef {
                module,
                names,
                lazy,
            });
        }
    }

    fn import_from(&mut self, stmt: &StmtImportFrom) {
        let rest = stmt.module.as_ref().map_or("", |m| m.as_str());
        let module = if stmt.level == 0 {
            rest.to_owned()
        } else {
            match resolve_relative(self.package, stmt.level as usize, rest) {
                Some(module) => module,
                None => return,
            }
        };
        let names = stmt
            .names
            .iter()
            .map(|alias| alias.name.as_str())
            .filter(|name| *name != "*")
            .map(str::to_owned)
            .collect();
        self.push(module, names, stmt.is_lazy);
    }

    fn visit_if(&mut self, stmt: &StmtIf) {
        let branches = std::iter::once((Some(&*stmt.test), &stmt.body[..])).chain(
            stmt.elif_else_clauses
                .iter()
                .map(|clause| (clause.test.as_ref(), &clause.body[..])),
        );
        for (test, body) in branches {
            let guard = match test {
                Some(test) => {
                    self.visit_expr(test);
                    guard_of(test)
                }
                None => Guard::Other,
            };
            match guard {
                Guard::TypeChecking => {}
                Guard::NotTypeChecking => {
                    self.visit_body(body);
                    return;
                }
                Guard::Other => self.visit_body(body),
            }
        }
    }

    fn visit_function_def(&mut self, def: &StmtFunctionDef) {
        // Everything but the body runs when the `def` statement itself runs.
        for decorator in &def.decorator_list {
            self.visit_decorator(decorator);
        }
        if let Some(type_params) = &def.type_params {
            self.visit_type_params(type_params);
        }
        self.visit_parameters(&def.parameters);
        if let Some(returns) = &def.returns {
            self.visit_annotation(returns);
        }
        let outer = std::mem::replace(&mut self.lazy, true);
        self.visit_body(&def.body);
        self.lazy = outer;
    }

    fn dynamic_import(&mut self, call: &ExprCall) {
        let Some(kind) = dynamic_import_kind(&call.func) else {
            return;
        };
        let Some((module, names)) =
            dynamic_import_target(kind, &call.arguments, self.module_name, self.package)
        else {
            return;
        };
        if is_dotted_name(&module) {
            self.push(module, names, false);
        }
    }
}

/// The module a call of `importlib.import_module` or `__import__` names, resolved as Python
/// would, with the literal names of `__import__`'s `fromlist`; `None` when it is not statically
/// known (a non-literal name, level or package, or a relative import above the top level).
pub(crate) fn dynamic_import_target(
    kind: DynamicImport,
    args: &Arguments,
    module_name: &str,
    package: Option<&str>,
) -> Option<(String, Vec<String>)> {
    let name = args
        .find_argument_value("name", 0)
        .and_then(string_literal)?;
    match kind {
        DynamicImport::ImportModule => {
            let level = name.bytes().take_while(|&b| b == b'.').count();
            if level == 0 {
                return Some((name.to_owned(), Vec::new()));
            }
            let package = args
                .find_argument_value("package", 1)
                .and_then(|p| package_argument(p, module_name, package))?;
            let module = resolve_relative(Some(package), level, &name[level..])?;
            Some((module, Vec::new()))
        }
        DynamicImport::DunderImport => {
            let level = match args.find_argument_value("level", 4) {
                None => 0,
                Some(Expr::NumberLiteral(lit)) => match &lit.value {
                    Number::Int(int) => int.as_usize()?,
                    _ => return None,
                },
                Some(_) => return None,
            };
            let module = if level == 0 {
                name.to_owned()
            } else {
                // `__import__` resolves against the caller's globals, i.e. this module.
                resolve_relative(package, level, name)?
            };
            Some((module, fromlist(args)))
        }
    }
}

/// The `package=` argument of `import_module`, when it is statically known.
fn package_argument<'e>(
    expr: &'e Expr,
    module_name: &'e str,
    package: Option<&'e str>,
) -> Option<&'e str> {
    match expr {
        Expr::StringLiteral(lit) => Some(lit.value.to_str()),
        // `import_module` takes `package` literally, so `__name__` in a plain module
        // resolves `.x` under the module itself, exactly as Python would.
        Expr::Name(ExprName { id, .. }) if id.as_str() == "__name__" => Some(module_name),
        Expr::Name(ExprName { id, .. }) if id.as_str() == "__package__" => package,
        Expr::Attribute(ExprAttribute { value, attr, .. })
            if attr.as_str() == "parent"
                && matches!(&**value, Expr::Name(ExprName { id, .. }) if id.as_str() == "__spec__") =>
        {
            package
        }
        _ => None,
    }
}

/// `__import__("a", fromlist=["b"])` is the desugared `from a import b`; keep the names so the
/// caller can treat them like a `from` import. Anything not fully literal gives no names.
fn fromlist(args: &Arguments) -> Vec<String> {
    let elts = match args.find_argument_value("fromlist", 3) {
        Some(Expr::List(list)) => &list.elts,
        Some(Expr::Tuple(tuple)) => &tuple.elts,
        _ => return Vec::new(),
    };
    elts.iter()
        .filter_map(string_literal)
        .filter(|name| *name != "*")
        .map(str::to_owned)
        .collect()
}

impl<'a> Visitor<'a> for Collector<'_> {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        match stmt {
            Stmt::Import(import) => {
                for alias in &import.names {
                    self.push(alias.name.as_str().to_owned(), Vec::new(), import.is_lazy);
                }
            }
            Stmt::ImportFrom(import) => self.import_from(import),
            Stmt::If(stmt_if) => self.visit_if(stmt_if),
            Stmt::FunctionDef(def) => self.visit_function_def(def),
            _ => walk_stmt(self, stmt),
        }
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        match expr {
            Expr::Lambda(lambda) => {
                // Defaults are evaluated when the lambda is created, the body only when called.
                if let Some(parameters) = &lambda.parameters {
                    self.visit_parameters(parameters);
                }
                let outer = std::mem::replace(&mut self.lazy, true);
                self.visit_expr(&lambda.body);
                self.lazy = outer;
            }
            Expr::Call(call) => {
                self.dynamic_import(call);
                walk_expr(self, expr);
            }
            _ => walk_expr(self, expr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(source: &str, module: &str, is_package: bool) -> Vec<ImportRef> {
        parse_imports(source, module, is_package).expect("parses")
    }

    fn r(module: &str, names: &[&str], lazy: bool) -> ImportRef {
        ImportRef {
            module: module.to_owned(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            lazy,
        }
    }

    #[test]
    fn absolute_and_aliased() {
        let src = "import os\nimport a.b.c\nimport a.b as x, json as j\nfrom x.y import z, w as v\nfrom q import *\n";
        assert_eq!(
            imports(src, "app", false),
            vec![
                r("os", &[], false),
                r("a.b.c", &[], false),
                r("a.b", &[], false),
                r("json", &[], false),
                r("x.y", &["z", "w"], false),
                r("q", &[], false),
            ]
        );
    }

    #[test]
    fn relative_in_plain_module() {
        let src = "from . import x\nfrom .sub import z\nfrom .. import y\nfrom ..up.mod import t\n";
        assert_eq!(
            imports(src, "pkg.inner.mod", false),
            vec![
                r("pkg.inner", &["x"], false),
                r("pkg.inner.sub", &["z"], false),
                r("pkg", &["y"], false),
                r("pkg.up.mod", &["t"], false),
            ]
        );
        assert_eq!(
            imports("from . import x\nfrom .sub import z\n", "pkg.mod", false),
            vec![r("pkg", &["x"], false), r("pkg.sub", &["z"], false)]
        );
    }

    #[test]
    fn relative_in_package_init() {
        let src = "from . import x\nfrom .sub import z\nfrom .. import y\n";
        assert_eq!(
            imports(src, "pkg.inner", true),
            vec![
                r("pkg.inner", &["x"], false),
                r("pkg.inner.sub", &["z"], false),
                r("pkg", &["y"], false),
            ]
        );
        assert_eq!(
            imports("from . import x\n", "pkg", true),
            vec![r("pkg", &["x"], false)]
        );
    }

    #[test]
    fn relative_above_top_level_is_dropped() {
        let src = "from .. import y\nfrom ...deep import z\nimport os\n";
        assert_eq!(imports(src, "pkg.mod", false), vec![r("os", &[], false)]);
        assert_eq!(imports(src, "pkg", true), vec![r("os", &[], false)]);
        // A top-level plain module has no package at all.
        assert_eq!(imports("from . import x\n", "script", false), vec![]);
        assert_eq!(imports("from . import x\n", "", false), vec![]);
    }

    #[test]
    fn type_checking_ignored_else_kept() {
        let src = "\
import typing
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import only_types
elif sys.version_info >= (3, 12):
    import new_runtime
else:
    import old_runtime
if typing.TYPE_CHECKING:
    from a import b
if t.TYPE_CHECKING:
    import c
else:
    import d
if not TYPE_CHECKING:
    import e
else:
    import f
if other:
    import g
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("typing", &[], false),
                r("typing", &["TYPE_CHECKING"], false),
                r("new_runtime", &[], false),
                r("old_runtime", &[], false),
                r("d", &[], false),
                r("e", &[], false),
                r("g", &[], false),
            ]
        );
    }

    #[test]
    fn type_checking_inside_function_and_elif() {
        let src = "\
def f():
    if TYPE_CHECKING:
        import hidden
    import shown
if x:
    import a
elif TYPE_CHECKING:
    import hidden2
else:
    import b
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("shown", &[], true),
                r("a", &[], false),
                r("b", &[], false)
            ]
        );
    }

    #[test]
    fn lazy_inside_functions_and_lambdas() {
        let src = "\
import top
def f():
    import inner
    def g():
        from deeper import x
async def h():
    import from_async
class C:
    import in_class
    def method(self):
        import in_method
def factory():
    class Local:
        import in_local_class
handler = lambda: __import__('in_lambda')
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("top", &[], false),
                r("inner", &[], true),
                r("deeper", &["x"], true),
                r("from_async", &[], true),
                r("in_class", &[], false),
                r("in_method", &[], true),
                r("in_local_class", &[], true),
                r("in_lambda", &[], true),
            ]
        );
    }

    #[test]
    fn control_flow_at_module_level_is_eager() {
        let src = "\
try:
    import ujson as json
except ImportError:
    import json
finally:
    import fin
with ctx():
    import w
for _ in range(1):
    import fo
while cond:
    import wh
match command:
    case [\"go\", direction]:
        import matched
    case _:
        pass
";
        let found: Vec<String> = imports(src, "m", false)
            .into_iter()
            .inspect(|i| assert!(!i.lazy, "{i:?}"))
            .map(|i| i.module)
            .collect();
        assert_eq!(found, ["ujson", "json", "fin", "w", "fo", "wh", "matched"]);
    }

    #[test]
    fn decorators_defaults_and_annotations_are_eager() {
        let src = "\
@register(importlib.import_module('decorator_mod'))
def f(x=__import__('default_mod'), *, y=import_module('kwdefault_mod')) -> __import__('ret_mod'):
    import body_mod
g = lambda a=__import__('lambda_default'): __import__('lambda_body')
class K(__import__('base_mod').Base):
    @staticmethod
    def s(z=__import__('method_default')):
        pass
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("decorator_mod", &[], false),
                r("default_mod", &[], false),
                r("kwdefault_mod", &[], false),
                r("ret_mod", &[], false),
                r("body_mod", &[], true),
                r("lambda_default", &[], false),
                r("lambda_body", &[], true),
                r("base_mod", &[], false),
                r("method_default", &[], false),
            ]
        );
    }

    #[test]
    fn dynamic_import_literals() {
        let src = "\
import importlib
m = importlib.import_module('a.b')
n = import_module(\"c\" \".d\")
o = __import__('e.f')
p = __import__('g', globals(), locals(), ['h', 'i'])
q = __import__('j', fromlist=('*',))
importlib.import_module(name)
importlib.import_module(f'plugins.{name}')
importlib.import_module('bad..name')
other.import_module('not_importlib')
def load():
    return importlib.import_module('lazy.one')
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("importlib", &[], false),
                r("a.b", &[], false),
                r("c.d", &[], false),
                r("e.f", &[], false),
                r("g", &["h", "i"], false),
                r("j", &[], false),
                r("lazy.one", &[], true),
            ]
        );
    }

    #[test]
    fn dynamic_import_relative() {
        let src = "\
importlib.import_module('.x', package=__name__)
importlib.import_module('.y', __package__)
importlib.import_module('..z', package='other.pkg')
importlib.import_module('.s', __spec__.parent)
importlib.import_module('.unknown', package=somevar)
importlib.import_module('.nopkg')
importlib.import_module('...too.high', 'other.pkg')
__import__('rel', globals(), locals(), [], 1)
__import__('dyn', level=lvl)
";
        assert_eq!(
            imports(src, "pkg", true),
            vec![
                r("pkg.x", &[], false),
                r("pkg.y", &[], false),
                r("other.z", &[], false),
                r("pkg.s", &[], false),
                r("pkg.rel", &[], false),
            ]
        );
        // In a plain module `__name__` is the module itself, as `import_module` sees it.
        assert_eq!(
            imports(
                "import_module('.x', package=__name__)\nimport_module('.y', package=__package__)\n",
                "pkg.mod",
                false
            ),
            vec![r("pkg.mod.x", &[], false), r("pkg.y", &[], false)]
        );
    }

    #[test]
    fn nested_expressions_are_walked() {
        let src = "\
xs = [__import__(n) for n in [__import__('in_iter')]]
ys = {k: __import__('in_dict_comp') for k in range(3)}
zs = (__import__('in_genexp') for _ in range(1))
msg = f\"{__import__('in_fstring').x!r:>{width}}\"
cfg = {'a': importlib.import_module('in_dict')}
with open(__import__('in_with').path) as fh:
    pass
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("in_iter", &[], false),
                r("in_dict_comp", &[], false),
                r("in_genexp", &[], false),
                r("in_fstring", &[], false),
                r("in_dict", &[], false),
                r("in_with", &[], false),
            ]
        );
    }

    #[test]
    fn duplicates_removed_first_seen_order() {
        let src = "\
import b
import a
import b
from c import x
from c import x
from c import y
def f():
    import a
    import a
import a
";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("b", &[], false),
                r("a", &[], false),
                r("c", &["x"], false),
                r("c", &["y"], false),
                r("a", &[], true),
            ]
        );
    }

    #[test]
    fn syntax_error_is_err_with_line() {
        let err = parse_imports("import os\n\ndef f(:\n    pass\n", "m", false).unwrap_err();
        assert!(err.starts_with("line 3: "), "{err}");
        let err = parse_imports("x = 1\r\ny = (\r\n", "m", false).unwrap_err();
        assert!(err.starts_with("line "), "{err}");
        assert!(parse_imports("import\n", "m", false).is_err());
    }

    #[test]
    fn modern_syntax_parses() {
        let src = r#"
import os
names = ["a", "b"]
print(f"{", ".join(names)}")
print(f"{f"{f"{1}"}"}")
print(f"{
    names[0]  # comment inside a PEP 701 f-string
}")
match os.name:
    case "posix" | "nt" as n if n:
        import posixpath
    case {"k": [1, *rest]}:
        pass
    case Point(x=0):
        pass
type Alias[T] = list[T]
def generic[T: int](x: T) -> T:
    import inner
    return x
class Box[T]:
    pass
try:
    pass
except* ValueError:
    import on_error
async def agen():
    async with ctx() as c:
        async for x in c:
            yield x
"#;
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("os", &[], false),
                r("posixpath", &[], false),
                r("inner", &[], true),
                r("on_error", &[], false),
            ]
        );
    }

    #[test]
    fn utf8_bom_accepted() {
        // Editors on Windows still write BOMs, and `read_to_string` keeps them.
        assert_eq!(
            imports("\u{feff}import os\n", "m", false),
            vec![r("os", &[], false)]
        );
    }

    #[test]
    fn pep_810_lazy_import_is_lazy() {
        // `lazy import` defers loading until first use, so it does not run at import time.
        let src = "lazy import heavy\nlazy from pkg import thing\nimport eager\n";
        assert_eq!(
            imports(src, "m", false),
            vec![
                r("heavy", &[], true),
                r("pkg", &["thing"], true),
                r("eager", &[], false),
            ]
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(
            resolve_relative(Some("a.b.c"), 1, "x"),
            Some("a.b.c.x".into())
        );
        assert_eq!(resolve_relative(Some("a.b.c"), 3, ""), Some("a".into()));
        assert_eq!(resolve_relative(Some("a.b.c"), 4, ""), None);
        assert_eq!(resolve_relative(None, 1, "x"), None);
        assert!(is_dotted_name("a.b_2.ñ"));
        assert!(!is_dotted_name("a..b"));
        assert!(!is_dotted_name("1a"));
        assert!(!is_dotted_name("a/b"));
        assert!(!is_dotted_name(""));
        assert_eq!(line_of("a\nb\r\nc\rd", 9), 4);
    }

    /// Run with `cargo test --lib static_imports -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput_stdlib() {
        use std::path::{Path, PathBuf};
        use std::time::Instant;

        let root = Path::new("/root/.pyenv/versions/3.11.7/lib/python3.11");
        if !root.is_dir() {
            eprintln!("skipping: {} not found", root.display());
            return;
        }
        let mut files: Vec<(String, bool, String)> = Vec::new();
        let mut not_utf8 = 0usize;
        let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                if file_type.is_dir() {
                    // Third-party code is not the stdlib.
                    if path.file_name().is_some_and(|n| n == "site-packages") {
                        continue;
                    }
                    stack.push(path);
                } else if file_type.is_file() && path.extension().is_some_and(|e| e == "py") {
                    let Ok(source) = std::fs::read_to_string(&path) else {
                        not_utf8 += 1;
                        continue;
                    };
                    let rel = path.strip_prefix(root).unwrap().with_extension("");
                    let mut parts: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    let is_package = parts.last().is_some_and(|p| p == "__init__");
                    if is_package {
                        parts.pop();
                    }
                    files.push((source, is_package, parts.join(".")));
                }
            }
        }
        let bytes: usize = files.iter().map(|(s, _, _)| s.len()).sum();

        let start = Instant::now();
        let mut ok = 0usize;
        let mut errors = 0usize;
        let mut refs = 0usize;
        for (source, is_package, module) in &files {
            match parse_imports(source, module, *is_package) {
                Ok(found) => {
                    ok += 1;
                    refs += found.len();
                }
                Err(_) => errors += 1,
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let n = files.len();
        println!(
            "static_imports throughput: {n} files ({:.1} MB) in {elapsed:.3}s = {:.0} files/s, {:.1} MB/s \
             [{ok} ok, {errors} syntax errors, {not_utf8} non-UTF-8 skipped, {refs} import refs]",
            bytes as f64 / 1e6,
            n as f64 / elapsed,
            bytes as f64 / 1e6 / elapsed,
        );
        assert!(ok > 0);
    }
}
