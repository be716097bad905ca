//! Kafka's `ssl.principal.mapping.rules` (KIP-371): turns a TLS client certificate's
//! distinguished name into a principal name. Splitting, rule syntax, back references and
//! case flags follow Kafka's `SslPrincipalMapper`, so an existing Kafka setting means the
//! same here. Patterns are compiled by the `regex` crate: Java-only syntax (look-around,
//! back references inside the pattern) is refused when the rules are parsed.

use std::fmt;
use std::sync::OnceLock;

use regex::{CaptureLocations, Regex, RegexBuilder};

use crate::error::MappingError;

/// Kafka's rule grammar, verbatim: `DEFAULT`, `RULE:pattern/replacement/[LU]` (with `\`
/// escaping `/`), or anything else (an empty rule is ignored, the rest is refused).
const RULE: &str = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)";
/// Java's `\s`.
const SPACE: &str = r"[ \t\n\x0B\x0C\r]";
/// Compiled patterns of a rule may not exceed this, so a hostile or mistyped rule cannot
/// make the broker build a huge automaton.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// The ordered mapping rules; the first rule that applies names the principal.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The distinguished name as it is.
    Default,
    Replace(Box<Replace>),
}

#[derive(Debug, Clone)]
struct Replace {
    /// The pattern and replacement as written, for `Display`.
    pattern_text: String,
    replacement_text: String,
    pattern: Regex,
    /// `pattern` anchored at both ends: Java's `Matcher.matches()`.
    whole: Regex,
    replacement: Vec<Piece>,
    case: Case,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Group(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Just `DEFAULT`, Kafka's default: the principal is the whole distinguished name.
impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    /// Parses a rules setting, e.g. `RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L,DEFAULT`.
    /// Commas separate rules only where Kafka's splitter says so (a pattern may contain
    /// commas); empty rules are ignored.
    pub fn parse(rules: &str) -> Result<Self, MappingError> {
        let trimmed = rules.trim_matches(|c: char| c <= ' ');
        let mut parsed = Vec::new();
        for split in splitter().captures_iter(trimmed) {
            let text = split.get(1).map_or("", |m| m.as_str());
            let rule = parser()
                .captures(text)
                .filter(|c| c.get(0).is_some_and(|m| m.end() == text.len()))
                .ok_or_else(|| {
                    invalid(text, "expected DEFAULT or RULE:pattern/replacement/[L|U]")
                })?;
            if rule.get(1).is_some() {
                parsed.push(Rule::Default);
            } else if let (Some(pattern), Some(replacement)) = (rule.get(2), rule.get(4)) {
                let case = match rule.get(6).map(|m| m.as_str()) {
                    Some("L") => Case::Lower,
                    Some("U") => Case::Upper,
                    _ => Case::Keep,
                };
                let replace = Replace::new(text, pattern.as_str(), replacement.as_str(), case)?;
                parsed.push(Rule::Replace(Box::new(replace)));
            }
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name for a distinguished name, or `None` when no rule applies (the
    /// connection is then refused, as in Kafka).
    pub fn map(&self, distinguished_name: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(distinguished_name.to_owned()),
            Rule::Replace(r) => r.apply(distinguished_name),
        })
    }
}

/// The rules as a setting that parses back to the same rules.
impl fmt::Display for PrincipalMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match rule {
                Rule::Default => f.write_str("DEFAULT")?,
                Rule::Replace(r) => {
                    let flag = match r.case {
                        Case::Keep => "",
                        Case::Lower => "L",
                        Case::Upper => "U",
                    };
                    write!(f, "RULE:{}/{}/{flag}", r.pattern_text, r.replacement_text)?;
                }
            }
        }
        Ok(())
    }
}

impl Replace {
    fn new(
        rule: &str,
        pattern_text: &str,
        replacement_text: &str,
        case: Case,
    ) -> Result<Self, MappingError> {
        let compile = |p: &str| {
            RegexBuilder::new(p)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|source| MappingError::Regex {
                    rule: rule.to_owned(),
                    source,
                })
        };
        let pattern = compile(pattern_text)?;
        // Safe to wrap: a pattern that compiled alone has balanced groups.
        let whole = compile(&format!(r"\A(?:{pattern_text})\z"))?;
        let replacement = parse_replacement(rule, replacement_text, &pattern)?;
        Ok(Replace {
            pattern_text: pattern_text.to_owned(),
            replacement_text: replacement_text.to_owned(),
            pattern,
            whole,
            replacement,
            case,
        })
    }

    /// Kafka's `Rule.apply`: if the pattern matches the whole name, Java's
    /// `String.replaceAll(pattern, replacement)` on it, then the case flag.
    fn apply(&self, name: &str) -> Option<String> {
        if !self.whole.is_match(name) {
            return None;
        }
        let mut locs = self.pattern.capture_locations();
        let mut out = String::new();
        let (mut copied, mut from) = (0, 0);
        // Java's find loop: after an empty match the search moves on one character, after
        // any other it resumes where the match ended (so `.*` on "abc" matches twice).
        while from <= name.len() {
            let Some(m) = self.pattern.captures_read_at(&mut locs, name, from) else {
                break;
            };
            out.push_str(&name[copied..m.start()]);
            self.substitute(name, &locs, &mut out);
            copied = m.end();
            from = if m.is_empty() {
                name[m.end()..]
                    .chars()
                    .next()
                    .map_or(name.len() + 1, |c| m.end() + c.len_utf8())
            } else {
                m.end()
            };
        }
        out.push_str(&name[copied..]);
        Some(match self.case {
            Case::Keep => out,
            Case::Lower => out.to_lowercase(),
            Case::Upper => out.to_uppercase(),
        })
    }

    fn substitute(&self, name: &str, locs: &CaptureLocations, out: &mut String) {
        for piece in &self.replacement {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                // A group that did not take part in the match adds nothing, as in Java.
                Piece::Group(g) => {
                    if let Some((start, end)) = locs.get(*g) {
                        out.push_str(&name[start..end]);
                    }
                }
            }
        }
    }
}

/// Java's replacement syntax (`\x` is `x`, `$n`, `${name}`) with Kafka's twist: a `$n`
/// whose first digit names no group is literal text. Java would fail at every connection
/// on the remaining errors; they are refused here, when the rules are parsed.
fn parse_replacement(rule: &str, text: &str, pattern: &Regex) -> Result<Vec<Piece>, MappingError> {
    let groups = pattern.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => literal.push(escaped),
                None => return Err(invalid(rule, "the replacement ends in a lone backslash")),
            },
            '$' => {
                let group = match chars.peek().copied() {
                    Some(d @ '0'..='9') => {
                        let mut group = d as usize - '0' as usize;
                        if group > groups {
                            if groups == 0 {
                                return Err(invalid(
                                    rule,
                                    "the replacement refers to a group but the pattern has none",
                                ));
                            }
                            literal.push('$');
                            continue;
                        }
                        chars.next();
                        // Java takes further digits while they still name a group.
                        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                            let next = group * 10 + d as usize;
                            if next > groups {
                                break;
                            }
                            group = next;
                            chars.next();
                        }
                        group
                    }
                    Some('{') => {
                        chars.next();
                        let mut name = String::new();
                        loop {
                            match chars.next() {
                                Some('}') => break,
                                Some(c) => name.push(c),
                                None => {
                                    return Err(invalid(rule, "the replacement has an unclosed ${"))
                                }
                            }
                        }
                        pattern
                            .capture_names()
                            .position(|n| n == Some(name.as_str()))
                            .ok_or_else(|| {
                                invalid(rule, "the replacement names a group the pattern lacks")
                            })?
                    }
                    _ => {
                        return Err(invalid(
                            rule,
                            "a $ in the replacement must be followed by a group",
                        ))
                    }
                };
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(group));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

fn invalid(rule: &str, reason: &str) -> MappingError {
    MappingError::InvalidRule {
        rule: rule.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Kafka's RULE_SPLITTER: one rule, then spaces and a comma or the end.
fn splitter() -> &'static Regex {
    static SPLITTER: OnceLock<Regex> = OnceLock::new();
    SPLITTER.get_or_init(|| {
        Regex::new(&format!(r"{SPACE}*({RULE}){SPACE}*(,{SPACE}*|$)"))
            .expect("the splitter is a valid regex")
    })
}

/// Kafka's RULE_PARSER, used like Java's `lookingAt`.
fn parser() -> &'static Regex {
    static PARSER: OnceLock<Regex> = OnceLock::new();
    PARSER.get_or_init(|| Regex::new(&format!("^(?:{RULE})")).expect("the parser is a valid regex"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &str, dn: &str) -> Option<String> {
        PrincipalMapper::parse(rules).unwrap().map(dn)
    }

    /// Kafka's `SslPrincipalMapper.toString()`, to reuse its splitting tests as they are.
    fn kafka_string(mapper: &PrincipalMapper) -> String {
        let rules: Vec<String> = mapper
            .rules
            .iter()
            .map(|rule| match rule {
                Rule::Default => "DEFAULT".to_owned(),
                Rule::Replace(r) => {
                    let flag = match r.case {
                        Case::Keep => "",
                        Case::Lower => "/L",
                        Case::Upper => "/U",
                    };
                    format!("RULE:{}/{}{flag}", r.pattern_text, r.replacement_text)
                }
            })
            .collect();
        format!("[{}]", rules.join(", "))
    }

    #[test]
    fn kafka_valid_rules() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            PrincipalMapper::parse(rules).unwrap();
        }
    }

    #[test]
    fn kafka_invalid_rules() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            assert!(
                matches!(
                    PrincipalMapper::parse(rules),
                    Err(MappingError::InvalidRule { .. })
                ),
                "{rules}"
            );
        }
    }

    #[test]
    fn kafka_mapping_examples() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let mapper = PrincipalMapper::parse(&rules).unwrap();
        let cases = [
            ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
            ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
            ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
            ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
            (
                "OU=JavaSoft,O=Sun Microsystems,C=US",
                "OU=JavaSoft,O=Sun Microsystems,C=US",
            ),
        ];
        for (dn, principal) in cases {
            assert_eq!(mapper.map(dn).as_deref(), Some(principal), "{dn}");
        }
        assert_eq!(
            map(
                r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT",
                r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz"
            )
            .as_deref(),
            Some(r"Tkac\, Adam")
        );
    }

    #[test]
    fn kafka_rules_splitting() {
        let cases = [
            ("[]", ""),
            ("[DEFAULT]", "DEFAULT"),
            ("[RULE:/]", "RULE://"),
            ("[RULE:/.*]", "RULE:/.*/"),
            ("[RULE:/.*/L]", "RULE:/.*/L"),
            ("[RULE:/, DEFAULT]", "RULE://,DEFAULT"),
            ("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  "),
            (
                "[RULE:   /     , DEFAULT]",
                "  RULE:   /     / ,  DEFAULT  ",
            ),
            (
                "[RULE:  /     /U, DEFAULT]",
                "  RULE:  /     /U   ,DEFAULT  ",
            ),
            (
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
            ),
            ("[]", ",   , , ,      , , ,   "),
            ("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,"),
            (
                "[RULE: /   , DEFAULT]",
                ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
            ),
            (
                "[RULE:   /  /U, DEFAULT]",
                "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,",
            ),
            (r"[RULE:\/\\\(\)\n\t/\/\/]", r"RULE:\/\\\(\)\n\t/\/\//"),
            (
                r"[RULE:\**\/+/*/L, RULE:\/*\**/**]",
                r"RULE:\**\/+/*/L,RULE:\/*\**/**/",
            ),
            (
                r"[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]",
                r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT",
            ),
        ];
        for (expected, rules) in cases {
            let mapper = PrincipalMapper::parse(rules).unwrap();
            assert_eq!(kafka_string(&mapper), expected, "{rules:?}");
            let again = PrincipalMapper::parse(&mapper.to_string()).unwrap();
            assert_eq!(
                kafka_string(&again),
                expected,
                "Display round trip of {rules:?}"
            );
        }
    }

    #[test]
    fn brief_example_and_defaults() {
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT";
        assert_eq!(
            map(rules, "CN=Kafka,OU=ServiceUsers,O=X").as_deref(),
            Some("Kafka")
        );
        assert_eq!(
            map(rules, "CN=Bob,OU=Eng,O=X,L=Y,ST=Z,C=US").as_deref(),
            Some("bob@eng")
        );
        assert_eq!(map(rules, "O=X").as_deref(), Some("O=X"));
        assert_eq!(
            PrincipalMapper::default().map("CN=a,O=b").as_deref(),
            Some("CN=a,O=b")
        );
        assert_eq!(PrincipalMapper::default().to_string(), "DEFAULT");
        // No DEFAULT, no match: refused.
        assert_eq!(map("RULE:^CN=(.*)$/$1/", "OU=x"), None);
        assert_eq!(map("", "CN=a"), None);
    }

    #[test]
    fn replacement_syntax() {
        let dn = "CN=ab,OU=cd";
        let one = |replacement: &str| map(&format!("RULE:^CN=(.*),OU=(.*)$/{replacement}/"), dn);
        assert_eq!(one("$2-$1").as_deref(), Some("cd-ab"));
        assert_eq!(one("$0").as_deref(), Some(dn));
        assert_eq!(
            one("$3").as_deref(),
            Some("$3"),
            "Kafka: no such group, literal"
        );
        assert_eq!(
            one("$12").as_deref(),
            Some("ab2"),
            "Java: digits while they name a group"
        );
        assert_eq!(one(r"\$1\\").as_deref(), Some(r"$1\"));
        assert_eq!(one("x$1y").as_deref(), Some("xaby"));
        assert_eq!(
            map(r"RULE:^CN=(?<cn>[^,]*).*$/${cn}!/U", dn).as_deref(),
            Some("AB!")
        );
        // An optional group that did not match adds nothing.
        assert_eq!(
            map("RULE:^CN=(x)?(.*)$/[$1]$2/", "CN=y").as_deref(),
            Some("[]y")
        );
        for bad in ["$", "$x", r"a\", "${nope}", "${cn"] {
            let rules = format!("RULE:^CN=(?<cn>.*)$/{bad}/");
            assert!(
                matches!(
                    PrincipalMapper::parse(&rules),
                    Err(MappingError::InvalidRule { .. })
                ),
                "{bad}"
            );
        }
        assert!(
            PrincipalMapper::parse("RULE:^CN=.*$/$1/").is_err(),
            "no group to refer to"
        );
        assert_eq!(map("RULE:^CN=.*$/$0/", "CN=x").as_deref(), Some("CN=x"));
    }

    #[test]
    fn java_replace_all_semantics() {
        // Unanchored `.*` matches the name, then the empty end: Java gives "xx".
        assert_eq!(map("RULE:.*/x/", "abc").as_deref(), Some("xx"));
        // Anchored, only once.
        assert_eq!(map("RULE:^.*$/x/", "abc").as_deref(), Some("x"));
        // The whole name must match, but the replacement applies to every match.
        assert_eq!(map("RULE:a/b/", "aa"), None);
        assert_eq!(map("RULE:(a)+/b/", "aa").as_deref(), Some("b"));
        assert_eq!(map("RULE:a|aa/<$0>/", "aa").as_deref(), Some("<a><a>"));
        assert_eq!(map("RULE:^CN=(.*)$/$1/L", "CN=ÄÖ").as_deref(), Some("äö"));
        assert_eq!(map("RULE:x*/-/", "é").as_deref(), None);
        assert_eq!(map("RULE:(é|)/-/", "é").as_deref(), Some("--"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for rules in ["RULE:(?=x)/y/", "RULE:(/y/", r"RULE:a{100000}{100000}/y/"] {
            assert!(
                matches!(
                    PrincipalMapper::parse(rules),
                    Err(MappingError::Regex { .. })
                ),
                "{rules}"
            );
        }
    }
}
