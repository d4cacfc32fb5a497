//! Success criteria: a tiny expression language, parsed when the runbook is loaded (so a typo
//! is a lint error, not a failed remediation at 3 a.m.) and evaluated after each step.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" expr ")" | test
//! test    := "exit_code" ("==" | "!=" | "<" | "<=" | ">" | ">=") INT
//!          | "exit_code" ["not"] "in" "[" INT ("," INT)* "]"
//!          | ("stdout" | "stderr") ["not"] "contains" STRING
//!          | ("stdout" | "stderr") ["not"] "matches" STRING      (regex, unanchored search)
//! STRING  := '"' ( [^"\\] | '\\' ["\\nt] )* '"'
//! ```
//! An empty or absent expression means `exit_code == 0`. A step killed by a signal has no exit
//! code; every `exit_code` test is then false (and `not` of it true), so write criteria as
//! positive checks.

use std::fmt;

use regex::Regex;

/// A parsed success-criteria expression.
#[derive(Debug, Clone)]
pub struct Criteria {
    source: String,
    expr: Expr,
}

/// What a step produced, as the criteria see it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// `None` when the process was killed by a signal.
    pub exit_code: Option<i32>,
    /// Captured stdout (lossy UTF-8).
    pub stdout: &'a str,
    /// Captured stderr (lossy UTF-8).
    pub stderr: &'a str,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    ExitCmp(CmpOp, i64),
    ExitIn(Vec<i64>),
    Contains(Stream, String),
    Matches(Stream, Regex),
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// A parse error with the 1-based column (in characters) where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based column, in characters, within the expression.
    pub column: usize,
    /// What was expected and found.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at column {} of the expression)", self.message, self.column)
    }
}

impl std::error::Error for ParseError {}

impl Criteria {
    /// Parse an expression; empty or whitespace-only means `exit_code == 0`.
    pub fn parse(source: &str) -> Result<Criteria, ParseError> {
        let tokens = lex(source)?;
        let expr = if tokens.is_empty() {
            Expr::ExitCmp(CmpOp::Eq, 0)
        } else {
            let mut p = Parser { tokens: &tokens, pos: 0, end_col: source.chars().count() + 1, depth: 0, tests: 0 };
            let e = p.or()?;
            if let Some(t) = p.peek() {
                return Err(ParseError {
                    column: t.col,
                    message: format!("unexpected {} after a complete expression", t.kind),
                });
            }
            e
        };
        Ok(Criteria { source: source.to_string(), expr })
    }

    /// The default criteria, `exit_code == 0`.
    pub fn default_success() -> Criteria {
        Criteria { source: "exit_code == 0".into(), expr: Expr::ExitCmp(CmpOp::Eq, 0) }
    }

    /// The expression as written (or `exit_code == 0` for the default).
    pub fn source(&self) -> &str {
        if self.source.trim().is_empty() {
            "exit_code == 0"
        } else {
            &self.source
        }
    }

    /// Evaluate against a step's outcome.
    pub fn eval(&self, obs: &Observed<'_>) -> bool {
        eval(&self.expr, obs)
    }
}

impl Default for Criteria {
    fn default() -> Self {
        Criteria::default_success()
    }
}

fn eval(e: &Expr, o: &Observed<'_>) -> bool {
    let stream = |s: &Stream| match s {
        Stream::Stdout => o.stdout,
        Stream::Stderr => o.stderr,
    };
    match e {
        Expr::Or(a, b) => eval(a, o) || eval(b, o),
        Expr::And(a, b) => eval(a, o) && eval(b, o),
        Expr::Not(a) => !eval(a, o),
        Expr::ExitCmp(op, n) => match o.exit_code {
            None => false,
            Some(c) => {
                let c = i64::from(c);
                match op {
                    CmpOp::Eq => c == *n,
                    CmpOp::Ne => c != *n,
                    CmpOp::Lt => c < *n,
                    CmpOp::Le => c <= *n,
                    CmpOp::Gt => c > *n,
                    CmpOp::Ge => c >= *n,
                }
            }
        },
        Expr::ExitIn(set) => o.exit_code.is_some_and(|c| set.contains(&i64::from(c))),
        Expr::Contains(s, needle) => stream(s).contains(needle.as_str()),
        Expr::Matches(s, re) => re.is_match(stream(s)),
    }
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Int(n) => write!(f, "number {n}"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Op(o) => write!(f, "`{o}`"),
            Tok::LParen => f.write_str("`(`"),
            Tok::RParen => f.write_str("`)`"),
            Tok::LBracket => f.write_str("`[`"),
            Tok::RBracket => f.write_str("`]`"),
            Tok::Comma => f.write_str("`,`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    col: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |col: usize, m: String| ParseError { column: col, message: m };
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let kind = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '=' | '!' | '<' | '>' => {
                let op = match two.as_str() {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ if c == '<' => "<",
                    _ if c == '>' => ">",
                    _ => return Err(err(col, format!("unknown operator `{c}` (use ==, !=, <, <=, >, >=)"))),
                };
                i += op.len();
                out.push(Token { kind: Tok::Op(op), col });
                continue;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(col, "unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => {
                            let e = match chars.get(i + 1) {
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('t') => '\t',
                                other => {
                                    return Err(err(
                                        i + 1,
                                        format!("unknown escape `\\{}` (use \\\" \\\\ \\n \\t)", other.map_or(String::new(), |c| c.to_string())),
                                    ))
                                }
                            };
                            s.push(e);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token { kind: Tok::Str(s), col });
                continue;
            }
            c if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse::<i64>().map_err(|_| err(col, format!("number `{text}` out of range")))?;
                out.push(Token { kind: Tok::Int(n), col });
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Token { kind: Tok::Ident(chars[start..i].iter().collect()), col });
                continue;
            }
            other => return Err(err(col, format!("unexpected character `{other}`"))),
        };
        i += 1;
        out.push(Token { kind, col });
    }
    Ok(out)
}

// ---- parser ----

/// Deepest nesting of `not` and parentheses an expression may use. The parser, `eval` and
/// the tree's drop all recurse once per level; a 10,000-deep expression overflowed the stack
/// (`runbook lint` and the daemon aborted), so the bound is checked while parsing.
pub const MAX_NESTING: usize = 32;
/// Most tests (`exit_code ...`, `stdout ...`) in one expression: a chain of `or`s is as deep
/// a tree as it is long.
pub const MAX_TESTS: usize = 256;

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    /// Column reported for "unexpected end of expression".
    end_col: usize,
    /// Current nesting of `not` and `(`.
    depth: usize,
    /// Tests parsed so far.
    tests: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self, expected: &str) -> Result<Token, ParseError> {
        match self.tokens.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(ParseError { column: self.end_col, message: format!("expected {expected}, found end of expression") }),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { kind: Tok::Ident(s), .. }) if s == w)
    }

    fn unexpected<T>(t: &Token, expected: &str) -> Result<T, ParseError> {
        Err(ParseError { column: t.col, message: format!("expected {expected}, found {}", t.kind) })
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.is_word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.is_word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        const START: &str = "`not`, `(`, `exit_code`, `stdout` or `stderr`";
        let t = self.next(START)?;
        match &t.kind {
            Tok::Ident(w) if w == "not" => {
                self.enter(&t)?;
                let e = Expr::Not(Box::new(self.unary()?));
                self.depth -= 1;
                Ok(e)
            }
            Tok::LParen => {
                self.enter(&t)?;
                let e = self.or()?;
                let close = self.next("`)`")?;
                if close.kind != Tok::RParen {
                    return Self::unexpected(&close, "`)` or `and`/`or`");
                }
                self.depth -= 1;
                Ok(e)
            }
            Tok::Ident(w) if w == "exit_code" || w == "stdout" || w == "stderr" => {
                self.tests += 1;
                if self.tests > MAX_TESTS {
                    return Err(ParseError { column: t.col, message: format!("more than {MAX_TESTS} tests in one expression") });
                }
                match w.as_str() {
                    "exit_code" => self.exit_test(),
                    "stdout" => self.stream_test(Stream::Stdout),
                    _ => self.stream_test(Stream::Stderr),
                }
            }
            _ => Self::unexpected(&t, START),
        }
    }

    /// One more level of `not` / `(` at token `t`, refused past [`MAX_NESTING`].
    fn enter(&mut self, t: &Token) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ParseError { column: t.col, message: format!("nested deeper than {MAX_NESTING} levels of `not` and parentheses") });
        }
        Ok(())
    }

    fn exit_test(&mut self) -> Result<Expr, ParseError> {
        const OPS: &str = "a comparison (==, !=, <, <=, >, >=) or `in`/`not in`";
        let t = self.next(OPS)?;
        let negate = matches!(&t.kind, Tok::Ident(w) if w == "not");
        let t = if negate { self.next("`in`")? } else { t };
        match &t.kind {
            Tok::Op(op) if !negate => {
                let op = match *op {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    "<=" => CmpOp::Le,
                    ">" => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                Ok(Expr::ExitCmp(op, self.int()?))
            }
            Tok::Ident(w) if w == "in" => {
                let open = self.next("`[`")?;
                if open.kind != Tok::LBracket {
                    return Self::unexpected(&open, "`[`");
                }
                let mut set = vec![self.int()?];
                loop {
                    let t = self.next("`,` or `]`")?;
                    match t.kind {
                        Tok::Comma => set.push(self.int()?),
                        Tok::RBracket => break,
                        _ => return Self::unexpected(&t, "`,` or `]`"),
                    }
                }
                let e = Expr::ExitIn(set);
                Ok(if negate { Expr::Not(Box::new(e)) } else { e })
            }
            _ => Self::unexpected(&t, if negate { "`in`" } else { OPS }),
        }
    }

    fn stream_test(&mut self, s: Stream) -> Result<Expr, ParseError> {
        let t = self.next("`contains`, `matches` or `not`")?;
        let negate = matches!(&t.kind, Tok::Ident(w) if w == "not");
        let t = if negate { self.next("`contains` or `matches`")? } else { t };
        let e = match &t.kind {
            Tok::Ident(w) if w == "contains" => Expr::Contains(s, self.string()?.0),
            Tok::Ident(w) if w == "matches" => {
                let (pat, col) = self.string()?;
                let re = Regex::new(&pat)
                    .map_err(|e| ParseError { column: col, message: format!("invalid regex {pat:?}: {e}") })?;
                Expr::Matches(s, re)
            }
            _ => return Self::unexpected(&t, "`contains` or `matches`"),
        };
        Ok(if negate { Expr::Not(Box::new(e)) } else { e })
    }

    fn int(&mut self) -> Result<i64, ParseError> {
        let t = self.next("a number")?;
        match t.kind {
            Tok::Int(n) => Ok(n),
            _ => Self::unexpected(&t, "a number"),
        }
    }

    fn string(&mut self) -> Result<(String, usize), ParseError> {
        let t = self.next("a double-quoted string")?;
        match t.kind {
            Tok::Str(s) => Ok((s, t.col)),
            _ => Self::unexpected(&t, "a double-quoted string"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str, code: Option<i32>, out: &str, err: &str) -> bool {
        Criteria::parse(src).unwrap().eval(&Observed { exit_code: code, stdout: out, stderr: err })
    }

    fn perr(src: &str) -> String {
        Criteria::parse(src).unwrap_err().to_string()
    }

    #[test]
    fn exit_code_tests() {
        assert!(ok("exit_code == 0", Some(0), "", ""));
        assert!(!ok("exit_code == 0", Some(1), "", ""));
        assert!(ok("exit_code != 1", Some(0), "", ""));
        assert!(ok("exit_code in [0, 3]", Some(3), "", ""));
        assert!(!ok("exit_code in [0, 3]", Some(2), "", ""));
        assert!(ok("exit_code not in [1,2]", Some(0), "", ""));
        assert!(ok("exit_code >= 0 and exit_code < 2", Some(1), "", ""));
        assert!(ok("exit_code == -1", Some(-1), "", ""));
        // Killed by a signal: no exit code, every exit_code test is false.
        assert!(!ok("exit_code == 0", None, "", ""));
        assert!(!ok("exit_code != 0", None, "", ""));
    }

    #[test]
    fn stream_tests_and_logic() {
        assert!(ok(r#"stdout contains "active""#, Some(0), "state: active\n", ""));
        assert!(ok(r#"stderr not contains "error""#, Some(0), "", "all fine"));
        // Unanchored search, but `^`/`$` are whole-text anchors unless (?m) is given.
        assert!(!ok(r#"stdout matches "^Use%? +[0-9]+$""#, Some(0), "x\nUse 42\n", ""));
        assert!(ok(r#"stdout matches "(?m)^Use +[0-9]+$""#, Some(0), "x\nUse 42\n", ""));
        assert!(ok(
            r#"exit_code == 0 and (stdout contains "a" or stdout contains "b") and not stderr contains "x""#,
            Some(0),
            "b",
            ""
        ));
        assert!(ok(r#"exit_code == 1 or stdout contains "q\"uote""#, Some(0), "q\"uote", ""));
        // `and` binds tighter than `or`.
        assert!(ok(r#"exit_code == 0 or exit_code == 5 and stdout contains "never""#, Some(0), "", ""));
    }

    #[test]
    fn empty_means_exit_zero() {
        let c = Criteria::parse("   ").unwrap();
        assert_eq!(c.source(), "exit_code == 0");
        assert!(c.eval(&Observed { exit_code: Some(0), stdout: "", stderr: "" }));
        assert!(!c.eval(&Observed { exit_code: Some(2), stdout: "", stderr: "" }));
    }

    #[test]
    fn errors_name_the_column() {
        assert_eq!(perr("exit_code = 0"), "unknown operator `=` (use ==, !=, <, <=, >, >=) (at column 11 of the expression)");
        assert_eq!(perr("exit_code == "), "expected a number, found end of expression (at column 14 of the expression)");
        assert_eq!(perr("stdout contains active"), "expected a double-quoted string, found `active` (at column 17 of the expression)");
        assert_eq!(perr("exit_code == 0 and"), "expected `not`, `(`, `exit_code`, `stdout` or `stderr`, found end of expression (at column 19 of the expression)");
        assert_eq!(perr("(exit_code == 0"), "expected `)`, found end of expression (at column 16 of the expression)");
        assert_eq!(perr("exit_code == 0 exit_code == 1"), "unexpected `exit_code` after a complete expression (at column 16 of the expression)");
        assert_eq!(perr("stdout contains \"abc"), "unterminated string (at column 17 of the expression)");
        assert_eq!(perr("stdout matches \"(\""), "invalid regex \"(\": regex parse error:\n    (\n    ^\nerror: unclosed group (at column 16 of the expression)");
        assert_eq!(perr("exit_code in [0, ]"), "expected a number, found `]` (at column 18 of the expression)");
        assert_eq!(perr("status == 0"), "expected `not`, `(`, `exit_code`, `stdout` or `stderr`, found `status` (at column 1 of the expression)");
        assert_eq!(perr("exit_code == 0 & x"), "unexpected character `&` (at column 16 of the expression)");
    }
}
