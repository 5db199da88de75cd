//! The import graph of first-party modules: who imports whom, and the order in which modules
//! first finished importing. The closure of a change is every module that could hold a value
//! computed from the changed ones, in that original order.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use super::static_imports::ImportRef;

#[derive(Debug, Clone)]
pub struct Module {
    pub path: PathBuf,
    pub is_package: bool,
    /// Position in the original import order; kept when the module is re-executed.
    pub order: u64,
}

#[derive(Default)]
pub struct ImportGraph {
    modules: HashMap<String, Module>,
    by_path: HashMap<PathBuf, String>,
    /// importer → imported, as recorded while the importer's code ran.
    runtime_edges: HashMap<String, BTreeSet<String>>,
    /// importer → imports found by parsing its source (resolved against known modules when used).
    static_imports: HashMap<String, Vec<ImportRef>>,
    /// A name a non-lazy static import could resolve to → the importers naming it: when that
    /// module becomes known (or goes), their dependencies change.
    static_wanted: HashMap<String, HashSet<String>>,
    /// `dependencies(importer)` of every known importer, kept up to date by every change...
    deps: HashMap<String, BTreeSet<String>>,
    /// ... and its reverse, so a closure costs only the modules it reaches.
    importers: HashMap<String, HashSet<String>>,
    next_order: u64,
}

impl ImportGraph {
    /// Registers a module that finished importing. Returns false if it was known already.
    pub fn add_module(&mut self, name: &str, path: PathBuf, is_package: bool) -> bool {
        if let Some(module) = self.modules.get_mut(name) {
            if module.path != path {
                self.by_path.remove(&module.path);
                self.by_path.insert(path.clone(), name.to_owned());
                module.path = path;
            }
            module.is_package = is_package;
            return false;
        }
        self.by_path.insert(path.clone(), name.to_owned());
        let order = self.next_order;
        self.next_order += 1;
        self.modules.insert(
            name.to_owned(),
            Module {
                path,
                is_package,
                order,
            },
        );
        self.refresh(name);
        self.refresh_wanting(name);
        true
    }

    pub fn remove_module(&mut self, name: &str) -> Option<Module> {
        let module = self.modules.remove(name)?;
        self.by_path.remove(&module.path);
        self.runtime_edges.remove(name);
        self.unindex_static(name);
        self.static_imports.remove(name);
        self.refresh(name);
        self.refresh_wanting(name);
        Some(module)
    }

    /// Recomputes the cached dependencies of `importer` and mends the reverse map.
    fn refresh(&mut self, importer: &str) {
        let new = if self.contains(importer) {
            self.compute_dependencies(importer)
        } else {
            BTreeSet::new()
        };
        let old = self.deps.remove(importer).unwrap_or_default();
        for gone in old.difference(&new) {
            if let Some(set) = self.importers.get_mut(gone) {
                set.remove(importer);
                if set.is_empty() {
                    self.importers.remove(gone);
                }
            }
        }
        for added in new.difference(&old) {
            self.importers
                .entry(added.clone())
                .or_default()
                .insert(importer.to_owned());
        }
        if !new.is_empty() {
            self.deps.insert(importer.to_owned(), new);
        }
    }

    /// Refreshes the importers whose static imports may resolve to `name` (it came or went).
    fn refresh_wanting(&mut self, name: &str) {
        let wanting: Vec<String> = self
            .static_wanted
            .get(name)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        for importer in wanting {
            self.refresh(&importer);
        }
    }

    fn static_targets(imports: &[ImportRef]) -> impl Iterator<Item = String> + '_ {
        imports.iter().filter(|i| !i.lazy).flat_map(|import| {
            std::iter::once(import.module.clone()).chain(
                import
                    .names
                    .iter()
                    .map(move |name| format!("{}.{}", import.module, name)),
            )
        })
    }

    fn unindex_static(&mut self, importer: &str) {
        let Some(imports) = self.static_imports.get(importer) else {
            return;
        };
        for target in Self::static_targets(imports) {
            if let Some(set) = self.static_wanted.get_mut(&target) {
                set.remove(importer);
                if set.is_empty() {
                    self.static_wanted.remove(&target);
                }
            }
        }
    }

    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.modules.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    pub fn module_at(&self, path: &Path) -> Option<&str> {
        self.by_path.get(path).map(String::as_str)
    }

    /// Modules whose files lie under `dir` (a directory that was removed or renamed).
    pub fn modules_under(&self, dir: &Path) -> Vec<String> {
        self.by_path
            .iter()
            .filter(|(path, _)| path.starts_with(dir))
            .map(|(_, name)| name.clone())
            .collect()
    }

    pub fn modules(&self) -> impl Iterator<Item = (&str, &Module)> {
        self.modules
            .iter()
            .map(|(name, module)| (name.as_str(), module))
    }

    pub fn add_edge(&mut self, importer: &str, imported: &str) {
        if importer != imported {
            let added = self
                .runtime_edges
                .entry(importer.to_owned())
                .or_default()
                .insert(imported.to_owned());
            if added && self.contains(importer) {
                self.deps
                    .entry(importer.to_owned())
                    .or_default()
                    .insert(imported.to_owned());
                self.importers
                    .entry(imported.to_owned())
                    .or_default()
                    .insert(importer.to_owned());
            }
        }
    }

    /// Removes and returns what `importer` was recorded to import: its code is about to run
    /// again and will record its imports anew.
    pub fn take_edges(&mut self, importer: &str) -> Vec<String> {
        let taken = self
            .runtime_edges
            .remove(importer)
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        self.refresh(importer);
        taken
    }

    /// Puts edges back (a failed reload rolls back).
    pub fn set_edges(&mut self, importer: &str, imported: Vec<String>) {
        let edges: BTreeSet<String> = imported.into_iter().filter(|m| m != importer).collect();
        if edges.is_empty() {
            self.runtime_edges.remove(importer);
        } else {
            self.runtime_edges.insert(importer.to_owned(), edges);
        }
        self.refresh(importer);
    }

    pub fn set_static_imports(&mut self, importer: &str, imports: Vec<ImportRef>) {
        self.unindex_static(importer);
        for target in Self::static_targets(&imports) {
            self.static_wanted
                .entry(target)
                .or_default()
                .insert(importer.to_owned());
        }
        self.static_imports.insert(importer.to_owned(), imports);
        self.refresh(importer);
    }

    /// Known modules an import statement makes its module depend on at import time.
    fn resolve(&self, import: &ImportRef) -> Vec<String> {
        let base = self.contains(&import.module).then(|| import.module.clone());
        let names = import
            .names
            .iter()
            .map(|name| format!("{}.{}", import.module, name))
            .filter(|name| self.contains(name));
        base.into_iter().chain(names).collect()
    }

    /// Every import-time dependency: recorded at run time, completed by the static pass.
    /// Imports inside functions run later, against the live module objects, so they are left out.
    pub fn dependencies(&self, importer: &str) -> BTreeSet<String> {
        if let Some(cached) = self.deps.get(importer) {
            return cached.clone();
        }
        self.compute_dependencies(importer)
    }

    fn compute_dependencies(&self, importer: &str) -> BTreeSet<String> {
        let mut deps: BTreeSet<String> = self
            .runtime_edges
            .get(importer)
            .cloned()
            .unwrap_or_default();
        if let Some(imports) = self.static_imports.get(importer) {
            for import in imports.iter().filter(|i| !i.lazy) {
                deps.extend(self.resolve(import));
            }
        }
        deps.remove(importer);
        deps
    }

    /// Static imports that the run-time record lacks (the static pass completing the graph).
    pub fn static_only_edges(&self) -> Vec<(String, String)> {
        let mut missing = Vec::new();
        for (importer, imports) in &self.static_imports {
            let recorded = self.runtime_edges.get(importer);
            for import in imports.iter().filter(|i| !i.lazy) {
                for dep in self.resolve(import) {
                    if dep != *importer && !recorded.is_some_and(|r| r.contains(&dep)) {
                        missing.push((importer.clone(), dep));
                    }
                }
            }
        }
        missing.sort();
        missing
    }

    /// The changed modules plus everything that transitively imports them, in original import
    /// order (cycles included: that order already worked once).
    pub fn closure<'a>(&self, changed: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let members = self.upward(changed);
        self.components(&members).into_iter().flatten().collect()
    }

    /// The closure as a reload plans it: each module with its dependencies inside the closure
    /// and the index of its import cycle (strongly connected component), dependencies first.
    pub fn closure_plan<'a>(
        &self,
        changed: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Vec<String>, usize)> {
        let members = self.upward(changed);
        let mut plan = Vec::with_capacity(members.len());
        for (index, component) in self.components(&members).into_iter().enumerate() {
            for name in component {
                let deps = self
                    .deps
                    .get(&name)
                    .map(|deps| {
                        deps.iter()
                            .filter(|dep| members.contains(*dep))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                plan.push((name, deps, index));
            }
        }
        plan
    }

    fn upward<'a>(&self, changed: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
        let reverse = &self.importers;
        let mut seen: HashSet<String> = HashSet::new();
        let mut queue: VecDeque<String> = VecDeque::new();
        for name in changed {
            if seen.insert(name.to_owned()) {
                queue.push_back(name.to_owned());
            }
        }
        while let Some(name) = queue.pop_front() {
            for importer in reverse.get(&name).into_iter().flatten() {
                if seen.insert(importer.clone()) {
                    queue.push_back(importer.clone());
                }
            }
        }
        seen
    }

    /// A sort key: the original import order, then the name (no allocation: sorts of large
    /// closures compare it often).
    fn order_of<'n>(&self, name: &'n str) -> (u64, &'n str) {
        (self.modules.get(name).map_or(u64::MAX, |m| m.order), name)
    }

    /// The import cycles (strongly connected components) of `members`, dependencies before their
    /// importers, even when an edit added a dependency that was first imported after its
    /// importer; inside a cycle, the original import order (it worked once). Tarjan's algorithm emits each strongly connected component after everything it
    /// depends on; roots and edges are visited in original order so the result is stable.
    fn components(&self, members: &HashSet<String>) -> Vec<Vec<String>> {
        let mut sorted: Vec<&String> = members.iter().collect();
        sorted.sort_by_cached_key(|name| self.order_of(name));
        let deps: HashMap<&str, Vec<String>> = sorted
            .iter()
            .map(|name| {
                let mut d: Vec<String> = self
                    .dependencies(name)
                    .into_iter()
                    .filter(|dep| members.contains(dep))
                    .collect();
                d.sort_by(|a, b| self.order_of(a).cmp(&self.order_of(b)));
                (name.as_str(), d)
            })
            .collect();

        struct Tarjan<'a> {
            deps: &'a HashMap<&'a str, Vec<String>>,
            index: HashMap<String, (usize, usize)>,
            stack: Vec<String>,
            on_stack: HashSet<String>,
            next: usize,
            components: Vec<Vec<String>>,
        }
        impl Tarjan<'_> {
            fn visit(&mut self, name: &str) {
                self.index.insert(name.to_owned(), (self.next, self.next));
                self.next += 1;
                self.stack.push(name.to_owned());
                self.on_stack.insert(name.to_owned());
                for dep in self.deps.get(name).into_iter().flatten() {
                    if !self.index.contains_key(dep) {
                        self.visit(dep);
                        let low = self.index[dep].1;
                        let entry = self.index.get_mut(name).expect("visited");
                        entry.1 = entry.1.min(low);
                    } else if self.on_stack.contains(dep) {
                        let dep_index = self.index[dep].0;
                        let entry = self.index.get_mut(name).expect("visited");
                        entry.1 = entry.1.min(dep_index);
                    }
                }
                let (index, low) = self.index[name];
                if index == low {
                    let mut component = Vec::new();
                    while let Some(member) = self.stack.pop() {
                        self.on_stack.remove(&member);
                        let done = member == name;
                        component.push(member);
                        if done {
                            break;
                        }
                    }
                    self.components.push(component);
                }
            }
        }

        let mut tarjan = Tarjan {
            deps: &deps,
            index: HashMap::new(),
            stack: Vec::new(),
            on_stack: HashSet::new(),
            next: 0,
            components: Vec::new(),
        };
        for name in sorted {
            if !tarjan.index.contains_key(name.as_str()) {
                tarjan.visit(name);
            }
        }
        let mut components = tarjan.components;
        for component in &mut components {
            component.sort_by(|a, b| self.order_of(a).cmp(&self.order_of(b)));
        }
        components
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(modules: &[&str], edges: &[(&str, &str)]) -> ImportGraph {
        let mut graph = ImportGraph::default();
        for name in modules {
            graph.add_module(name, PathBuf::from(format!("/app/{name}.py")), false);
        }
        for (importer, imported) in edges {
            graph.add_edge(importer, imported);
        }
        graph
    }

    #[test]
    fn closure_is_changed_plus_transitive_importers_in_import_order() {
        // Finished importing in this order: leaf, mid, other, app.
        let g = graph(
            &["leaf", "mid", "other", "app"],
            &[("mid", "leaf"), ("app", "mid"), ("app", "other")],
        );
        assert_eq!(g.closure(["leaf"]), vec!["leaf", "mid", "app"]);
        assert_eq!(g.closure(["other"]), vec!["other", "app"]);
        assert_eq!(g.closure(["app"]), vec!["app"]);
    }

    #[test]
    fn cycles_keep_the_recorded_order() {
        // b finished first (imported while a was still running), then a; main imports a.
        let g = graph(
            &["b", "a", "main"],
            &[("a", "b"), ("b", "a"), ("main", "a")],
        );
        assert_eq!(g.closure(["a"]), vec!["b", "a", "main"]);
        assert_eq!(g.closure(["b"]), vec!["b", "a", "main"]);
    }

    #[test]
    fn a_dependency_added_by_an_edit_runs_before_its_importer() {
        // `late` was first imported after `service` (an edit added the import).
        let g = graph(
            &["service", "app", "late"],
            &[("service", "late"), ("app", "service")],
        );
        assert_eq!(
            g.closure(["late", "service"]),
            vec!["late", "service", "app"]
        );
    }

    #[test]
    fn re_adding_a_module_keeps_its_original_order() {
        let mut g = graph(&["x", "y"], &[]);
        assert!(!g.add_module("x", PathBuf::from("/app/x.py"), false));
        assert!(g.module("x").unwrap().order < g.module("y").unwrap().order);
    }

    #[test]
    fn take_and_set_edges_round_trip() {
        let mut g = graph(&["a", "b", "c"], &[("c", "a"), ("c", "b")]);
        let old = g.take_edges("c");
        assert_eq!(g.closure(["a"]), vec!["a"]);
        g.set_edges("c", old);
        assert_eq!(g.closure(["a"]), vec!["a", "c"]);
    }

    #[test]
    fn static_imports_complete_the_graph_but_lazy_ones_do_not_propagate() {
        let mut g = graph(&["pkg", "pkg.models", "pkg.views", "pkg.tasks"], &[]);
        g.set_static_imports(
            "pkg.views",
            vec![ImportRef {
                module: "pkg".into(),
                names: vec!["models".into()],
                lazy: false,
            }],
        );
        g.set_static_imports(
            "pkg.tasks",
            vec![ImportRef {
                module: "pkg.models".into(),
                names: vec![],
                lazy: true,
            }],
        );
        assert_eq!(g.closure(["pkg.models"]), vec!["pkg.models", "pkg.views"]);
        assert_eq!(
            g.static_only_edges(),
            vec![
                ("pkg.views".to_owned(), "pkg".to_owned()),
                ("pkg.views".to_owned(), "pkg.models".to_owned())
            ]
        );
    }

    /// The reverse map as the closure once rebuilt it on every call.
    fn importers_from_scratch(g: &ImportGraph) -> HashMap<String, BTreeSet<String>> {
        let mut reverse: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (importer, _) in g.modules() {
            for dep in g.compute_dependencies(importer) {
                reverse.entry(dep).or_default().insert(importer.to_owned());
            }
        }
        reverse
    }

    fn assert_consistent(g: &ImportGraph, step: usize) {
        let kept: HashMap<String, BTreeSet<String>> = g
            .importers
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
            .collect();
        assert_eq!(kept, importers_from_scratch(g), "after step {step}");
        for (name, _) in g.modules() {
            assert_eq!(
                g.dependencies(name),
                g.compute_dependencies(name),
                "{name} after step {step}"
            );
        }
    }

    #[test]
    fn kept_importers_equal_the_from_scratch_answer_under_every_kind_of_change() {
        // A fixed pseudo-random sequence of every operation that changes dependencies,
        // including static imports naming modules that become known only later.
        let names: Vec<String> = (0..12).map(|i| format!("p.m{i}")).collect();
        let mut g = ImportGraph::default();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut saved: HashMap<String, Vec<String>> = HashMap::new();
        for step in 0..3000 {
            let a = names[next(names.len())].clone();
            let b = names[next(names.len())].clone();
            match next(7) {
                0 => {
                    g.add_module(&a, PathBuf::from(format!("/app/{a}.py")), next(3) == 0);
                }
                1 => {
                    g.remove_module(&a);
                }
                2 | 3 => g.add_edge(&a, &b),
                4 => {
                    saved.insert(a.clone(), g.take_edges(&a));
                }
                5 => {
                    let edges = saved.remove(&a).unwrap_or_else(|| vec![b.clone()]);
                    g.set_edges(&a, edges);
                }
                _ => {
                    let (module, names_) = match next(3) {
                        0 => (b.clone(), vec![]),
                        1 => ("p".to_owned(), vec![b["p.".len()..].to_owned()]),
                        _ => ("p".to_owned(), vec!["m99".to_owned()]),
                    };
                    g.set_static_imports(
                        &a,
                        vec![ImportRef {
                            module,
                            names: names_,
                            lazy: next(4) == 0,
                        }],
                    );
                }
            }
            assert_consistent(&g, step);
        }
    }

    #[test]
    fn a_static_import_of_a_module_known_later_counts_once_it_is_known() {
        let mut g = graph(&["app"], &[]);
        g.set_static_imports(
            "app",
            vec![ImportRef {
                module: "late".into(),
                names: vec![],
                lazy: false,
            }],
        );
        assert_eq!(g.closure(["late"]), vec!["late"]);
        g.add_module("late", PathBuf::from("/app/late.py"), false);
        assert_eq!(g.closure(["late"]), vec!["late", "app"]);
        g.remove_module("late");
        assert_eq!(g.closure(["late"]), vec!["late"]);
    }

    #[test]
    fn removed_modules_leave_the_graph() {
        let mut g = graph(&["a", "b"], &[("b", "a")]);
        g.remove_module("b");
        assert_eq!(g.closure(["a"]), vec!["a"]);
        assert!(g.module_at(Path::new("/app/b.py")).is_none());
    }
}
