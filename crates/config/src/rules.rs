//! Compiled table rules: filters, routes and column rules.
//!
//! Every pattern is a regex (the `regex` crate's syntax) matched against the
//! *whole* `schema.table` name of the source table — patterns are anchored,
//! so `shop\..*` does not match `myshop.users`. Matching is case-sensitive,
//! like table names on Linux servers; write `(?i)` for the other behaviour.
//! Column names, which MySQL compares case-insensitively, are compared
//! case-insensitively.

use regex::{Regex, RegexSet};

/// Schemas that are never replicated: their rows are server state (grants,
/// replication positions, statistics), and applying them to the target would
/// corrupt it.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "sys", "information_schema", "performance_schema"];

/// A compiled, anchored pattern on `schema.table`, remembering its source text.
#[derive(Clone, Debug)]
pub struct TablePattern {
    source: String,
    regex: Regex,
}

impl TablePattern {
    /// Compiles `pattern`, anchored at both ends. The error is a one-line
    /// explanation from the regex parser.
    pub fn new(pattern: &str) -> Result<TablePattern, String> {
        match Regex::new(&anchored(pattern)) {
            Ok(regex) => Ok(TablePattern {
                source: pattern.to_string(),
                regex,
            }),
            Err(e) => Err(regex_message(&e)),
        }
    }

    /// The pattern as written in the file.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches the whole `schema.table`.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.regex.is_match(&qualified(schema, table))
    }

    /// Number of capture groups, not counting the whole match.
    pub fn groups(&self) -> usize {
        self.regex.captures_len() - 1
    }
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn qualified(schema: &str, table: &str) -> String {
    let mut name = String::with_capacity(schema.len() + 1 + table.len());
    name.push_str(schema);
    name.push('.');
    name.push_str(table);
    name
}

/// The one-line reason from a regex error (the crate's message spans several
/// lines with a caret diagram; the file position is reported separately).
fn regex_message(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text.lines().last().unwrap_or("invalid regex"))
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled regex exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// Which tables are replicated (`filter` in the file).
///
/// A table is replicated when it matches at least one `include` pattern (or
/// `include` is empty, meaning every table), matches no `exclude` pattern,
/// and is not in a [`SYSTEM_SCHEMAS`] schema.
#[derive(Clone, Debug)]
pub struct Filter {
    include: Vec<TablePattern>,
    exclude: Vec<TablePattern>,
    /// One automaton for all patterns; `None` if the combined set exceeds
    /// the regex size limit, in which case the patterns are tried one by one.
    include_set: Option<RegexSet>,
    exclude_set: Option<RegexSet>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter::new(Vec::new(), Vec::new())
    }
}

impl Filter {
    /// Builds a filter from compiled patterns.
    pub fn new(include: Vec<TablePattern>, exclude: Vec<TablePattern>) -> Filter {
        let set = |patterns: &[TablePattern]| {
            RegexSet::new(patterns.iter().map(|p| anchored(&p.source))).ok()
        };
        Filter {
            include_set: set(&include),
            exclude_set: set(&exclude),
            include,
            exclude,
        }
    }

    /// Whether changes to `schema.table` are replicated.
    pub fn includes(&self, schema: &str, table: &str) -> bool {
        if SYSTEM_SCHEMAS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(schema))
        {
            return false;
        }
        let name = qualified(schema, table);
        (self.include.is_empty() || any_match(&self.include_set, &self.include, &name))
            && !any_match(&self.exclude_set, &self.exclude, &name)
    }

    /// The `include` patterns, in file order.
    pub fn include(&self) -> &[TablePattern] {
        &self.include
    }

    /// The `exclude` patterns, in file order.
    pub fn exclude(&self) -> &[TablePattern] {
        &self.exclude
    }
}

fn any_match(set: &Option<RegexSet>, patterns: &[TablePattern], name: &str) -> bool {
    match set {
        Some(set) => set.is_match(name),
        None => patterns.iter().any(|p| p.regex.is_match(name)),
    }
}

/// A piece of a route template: literal text or a capture group number.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

/// A parsed `to` template: a schema part and a table part, split at the one
/// literal `.` of the template.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Template {
    schema: Vec<Piece>,
    table: Vec<Piece>,
}

impl Template {
    /// Parses `$N` group references (N = all following digits) and `$$`
    /// (a literal `$`); checks every group exists in a pattern with
    /// `groups` capture groups.
    fn parse(to: &str, groups: usize) -> Result<Template, String> {
        let mut parts: Vec<Vec<Piece>> = vec![Vec::new()];
        let mut chars = to.chars().peekable();
        let push_char = |parts: &mut Vec<Vec<Piece>>, c: char| {
            let part = parts.last_mut().expect("non-empty");
            match part.last_mut() {
                Some(Piece::Text(text)) => text.push(c),
                _ => part.push(Piece::Text(c.to_string())),
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '$' => match chars.peek() {
                    Some('$') => {
                        chars.next();
                        push_char(&mut parts, '$');
                    }
                    Some(d) if d.is_ascii_digit() => {
                        let mut number = String::new();
                        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                            number.push(*d);
                            chars.next();
                        }
                        let group: usize = number.parse().unwrap_or(usize::MAX);
                        if group == 0 {
                            return Err(
                                "`$0` is the whole `schema.table`; use capture groups (`$1`, ...)"
                                    .into(),
                            );
                        }
                        if group > groups {
                            return Err(format!(
                                "`${number}` refers to capture group {number}, but the `match` pattern has {}",
                                match groups {
                                    0 => "no groups".to_string(),
                                    1 => "only 1 group".to_string(),
                                    n => format!("only {n} groups"),
                                }
                            ));
                        }
                        parts.last_mut().expect("non-empty").push(Piece::Group(group));
                    }
                    _ => {
                        return Err(
                            "`$` must be followed by a group number (`$1`) or another `$` (`$$` is a literal `$`)"
                                .into(),
                        )
                    }
                },
                '.' => parts.push(Vec::new()),
                c => push_char(&mut parts, c),
            }
        }
        if parts.len() != 2 {
            return Err(
                "expected `SCHEMA.TABLE` with exactly one literal `.` (e.g. `shop_copy.$1`)".into(),
            );
        }
        let table = parts.pop().expect("two parts");
        let schema = parts.pop().expect("two parts");
        if schema.is_empty() || table.is_empty() {
            return Err("schema and table parts must not be empty (e.g. `shop_copy.$1`)".into());
        }
        Ok(Template { schema, table })
    }

    fn expand(pieces: &[Piece], caps: &regex::Captures<'_>) -> String {
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(n) => out.push_str(caps.get(*n).map_or("", |m| m.as_str())),
            }
        }
        out
    }
}

/// One `routes` entry: tables matching `match` are written to the table the
/// `to` template names.
#[derive(Clone, Debug)]
pub struct Route {
    pattern: TablePattern,
    to: String,
    template: Template,
}

impl Route {
    /// Compiles a route; the error explains what is wrong with the `to`
    /// template (the pattern was compiled already).
    pub fn new(pattern: TablePattern, to: &str) -> Result<Route, String> {
        let template = Template::parse(to, pattern.groups())?;
        Ok(Route {
            pattern,
            to: to.to_string(),
            template,
        })
    }

    /// The `match` pattern.
    pub fn pattern(&self) -> &TablePattern {
        &self.pattern
    }

    /// The `to` template as written.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// The target `(schema, table)` if this route matches.
    pub fn apply(&self, schema: &str, table: &str) -> Option<(String, String)> {
        let name = qualified(schema, table);
        let caps = self.pattern.regex.captures(&name)?;
        Some((
            Template::expand(&self.template.schema, &caps),
            Template::expand(&self.template.table, &caps),
        ))
    }
}

/// Schema/table renames (`routes` in the file). The first route whose
/// pattern matches wins; tables no route matches keep their names.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Builds the route list in priority order.
    pub fn new(routes: Vec<Route>) -> Routes {
        Routes { routes }
    }

    /// The target `(schema, table)` of the source table `schema.table`.
    pub fn route(&self, schema: &str, table: &str) -> (String, String) {
        self.routes
            .iter()
            .find_map(|r| r.apply(schema, table))
            .unwrap_or_else(|| (schema.to_string(), table.to_string()))
    }

    /// The routes in priority order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether there are no routes (every table keeps its name).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// One `columns` entry: which columns of the matching tables are replicated
/// and under which names. Column names are the *source* table's names;
/// comparisons ignore ASCII case, as MySQL does.
#[derive(Clone, Debug)]
pub struct ColumnRule {
    /// The `table` pattern (on the source `schema.table`).
    pub table: TablePattern,
    /// `include`: when non-empty, only these columns are replicated.
    pub include: Vec<String>,
    /// `exclude`: these columns are dropped.
    pub exclude: Vec<String>,
    /// `rename`: `(source name, target name)` pairs.
    pub rename: Vec<(String, String)>,
}

impl ColumnRule {
    /// Whether `column` is replicated under this rule.
    pub fn keeps(&self, column: &str) -> bool {
        let listed = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case(column));
        (self.include.is_empty() || listed(&self.include)) && !listed(&self.exclude)
    }

    /// The target name of `column` (itself unless renamed).
    pub fn target_name<'a>(&'a self, column: &'a str) -> &'a str {
        self.rename
            .iter()
            .find(|(from, _)| from.eq_ignore_ascii_case(column))
            .map_or(column, |(_, to)| to.as_str())
    }
}

/// Per-table column rules (`columns` in the file). The first rule whose
/// `table` pattern matches a table applies to it; later rules are not
/// consulted for that table.
#[derive(Clone, Debug, Default)]
pub struct ColumnRules {
    rules: Vec<ColumnRule>,
}

impl ColumnRules {
    /// Builds the rule list in priority order.
    pub fn new(rules: Vec<ColumnRule>) -> ColumnRules {
        ColumnRules { rules }
    }

    /// The rule that applies to `schema.table`, if any.
    pub fn rule(&self, schema: &str, table: &str) -> Option<&ColumnRule> {
        let name = qualified(schema, table);
        self.rules.iter().find(|r| r.table.regex.is_match(&name))
    }

    /// Columns of `schema.table` that are dropped (empty when no rule applies).
    pub fn excluded(&self, schema: &str, table: &str) -> &[String] {
        self.rule(schema, table).map_or(&[], |r| &r.exclude)
    }

    /// Whether `column` of `schema.table` is replicated.
    pub fn keeps(&self, schema: &str, table: &str, column: &str) -> bool {
        self.rule(schema, table).is_none_or(|r| r.keeps(column))
    }

    /// The target name of `column` of `schema.table`.
    pub fn target_name<'a>(&'a self, schema: &str, table: &str, column: &'a str) -> &'a str {
        match self.rule(schema, table) {
            Some(rule) => rule.target_name(column),
            None => column,
        }
    }

    /// The rules in priority order.
    pub fn rules(&self) -> &[ColumnRule] {
        &self.rules
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pattern: &str) -> TablePattern {
        TablePattern::new(pattern).unwrap()
    }

    #[test]
    fn filter_behaviour() {
        let all = Filter::default();
        assert!(all.includes("shop", "users"));
        assert!(!all.includes("mysql", "user"));
        assert!(!all.includes("PERFORMANCE_SCHEMA", "x"));

        let f = Filter::new(
            vec![p(r"shop\..*"), p(r"crm\.customers")],
            vec![p(r"shop\.tmp_.*")],
        );
        assert!(f.includes("shop", "users"));
        assert!(f.includes("crm", "customers"));
        assert!(!f.includes("crm", "customers_old"), "anchored at the end");
        assert!(!f.includes("myshop", "users"), "anchored at the start");
        assert!(!f.includes("shop", "tmp_import"));
        assert!(!f.includes("Shop", "users"), "case-sensitive");
        assert_eq!(f.include()[1].as_str(), r"crm\.customers");

        // Without the combined set (size limit), the same answers.
        let mut slow = f.clone();
        slow.include_set = None;
        slow.exclude_set = None;
        for (schema, table) in [
            ("shop", "users"),
            ("shop", "tmp_a"),
            ("crm", "customers"),
            ("x", "y"),
        ] {
            assert_eq!(slow.includes(schema, table), f.includes(schema, table));
        }

        // An alternation is anchored as a whole, not just its first branch.
        let f = Filter::new(vec![p(r"a\.x|b\.y")], vec![]);
        assert!(f.includes("b", "y"));
        assert!(!f.includes("b", "yz"));
        assert!(!f.includes("za", "x"));
    }

    #[test]
    fn route_behaviour() {
        let routes = Routes::new(vec![
            Route::new(p(r"shop\.(.*)"), "shop_copy.$1").unwrap(),
            Route::new(p(r"(\w+)\.(\w+)"), "$1_archive.t_$2$$").unwrap(),
        ]);
        assert_eq!(
            routes.route("shop", "users"),
            ("shop_copy".into(), "users".into())
        );
        assert_eq!(
            routes.route("crm", "a"),
            ("crm_archive".into(), "t_a$".into())
        );
        assert_eq!(routes.route("other", "a.b"), ("other".into(), "a.b".into()));
        // A captured `.` stays in its part: the split is at the template's dot.
        let r = Route::new(p(r"(.*)"), "x.$1").unwrap();
        assert_eq!(r.apply("a", "b"), Some(("x".into(), "a.b".into())));
        // An optional group that did not participate expands to nothing.
        let r = Route::new(p(r"s\.(t)?(.*)"), "d.$1$2").unwrap();
        assert_eq!(r.apply("s", "u"), Some(("d".into(), "u".into())));
    }

    #[test]
    fn route_templates_are_checked() {
        for (pattern, to, needle) in [
            (
                r"shop\.(.*)",
                "shop_copy.$2",
                "refers to capture group 2, but the `match` pattern has only 1 group",
            ),
            (r"shop\..*", "x.$1", "has no groups"),
            (r"(a)\.(b)", "x.$3", "only 2 groups"),
            (r"shop\..*", "shop_copy", "exactly one literal `.`"),
            (r"shop\..*", "a.b.c", "exactly one literal `.`"),
            (r"shop\..*", ".t", "must not be empty"),
            (
                r"shop\.(.*)",
                "x.${1}",
                "must be followed by a group number",
            ),
            (r"shop\.(.*)", "x.$", "must be followed by a group number"),
            (r"shop\.(.*)", "x.$0", "`$0` is the whole"),
        ] {
            let err = Route::new(p(pattern), to).expect_err(to);
            assert!(err.contains(needle), "{to}: {err}");
        }
        assert!(
            Route::new(p(r"(?P<s>a)\.(b)"), "$1.$2").is_ok(),
            "named groups count by number"
        );
    }

    #[test]
    fn column_rule_behaviour() {
        let rules = ColumnRules::new(vec![
            ColumnRule {
                table: p(r"shop\.users"),
                include: vec![],
                exclude: vec!["password_hash".into()],
                rename: vec![("email".into(), "email_address".into())],
            },
            ColumnRule {
                table: p(r"shop\..*"),
                include: vec!["id".into(), "name".into()],
                exclude: vec![],
                rename: vec![],
            },
        ]);
        assert_eq!(
            rules.excluded("shop", "users"),
            ["password_hash".to_string()]
        );
        assert!(!rules.keeps("shop", "users", "Password_Hash"));
        assert!(rules.keeps("shop", "users", "email"));
        assert_eq!(rules.target_name("shop", "users", "EMAIL"), "email_address");
        assert_eq!(rules.target_name("shop", "users", "id"), "id");
        // First match wins: shop.users is not subject to the include list.
        assert!(rules.keeps("shop", "users", "created_at"));
        assert!(rules.excluded("shop", "orders").is_empty());
        assert!(rules.keeps("shop", "orders", "ID"));
        assert!(!rules.keeps("shop", "orders", "total"));
        assert!(rules.keeps("crm", "x", "anything"));
        assert!(rules.rule("crm", "x").is_none());
    }

    #[test]
    fn regex_errors_are_one_line() {
        let err = TablePattern::new(r"shop\.(").unwrap_err();
        assert_eq!(err, "unclosed group");
        let err = TablePattern::new(r"a{2,1}").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
}
