//! Wildcard patterns (`*`, `?`) with IAM policy variables (`${aws:username}`,
//! `${aws:PrincipalTag/team, 'default'}`, and the escapes `${*}`, `${?}`, `${$}`),
//! matched as a whole string or ARN component by ARN component.
//!
//! IAM User Guide, "IAM policy elements: Variables and tags": a substituted
//! value is literal (its `*` is not a wildcard), and an element whose variable
//! cannot be resolved matches nothing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Char(char),
    /// `*`: any run of characters.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Looks up a policy variable; `None` when the key is absent or multi-valued.
pub(crate) type VarLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Compiles `pattern`. `wildcards`: whether `*` and `?` are wildcards (they are
/// in Action/Resource/…Like/Arn…; literal in StringEquals). `vars`: substitute
/// `${…}` (policy version 2012-10-17) or leave it literal (`None`). Returns `None`
/// when a variable cannot be resolved.
pub(crate) fn compile(
    pattern: &str,
    wildcards: bool,
    vars: Option<VarLookup<'_>>,
) -> Option<Vec<Tok>> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut rest = pattern;
    while !rest.is_empty() {
        if let (Some(lookup), Some(after)) = (vars, rest.strip_prefix("${")) {
            if let Some(end) = after.find('}') {
                let inner = &after[..end];
                rest = &after[end + 1..];
                match inner {
                    "*" => out.push(Tok::Char('*')),
                    "?" => out.push(Tok::Char('?')),
                    "$" => out.push(Tok::Char('$')),
                    _ => {
                        let (key, default) = match inner.split_once(',') {
                            Some((k, d)) => {
                                let d = d.trim();
                                let d = d
                                    .strip_prefix('\'')
                                    .and_then(|d| d.strip_suffix('\''))
                                    .unwrap_or(d);
                                (k.trim(), Some(d))
                            }
                            None => (inner.trim(), None),
                        };
                        let value = lookup(key).or_else(|| default.map(str::to_owned))?;
                        out.extend(value.chars().map(Tok::Char));
                    }
                }
                continue;
            }
        }
        let mut chars = rest.chars();
        let Some(c) = chars.next() else { break };
        rest = chars.as_str();
        out.push(match c {
            '*' if wildcards => Tok::Star,
            '?' if wildcards => Tok::One,
            c => Tok::Char(c),
        });
    }
    Some(out)
}

fn char_eq(a: char, b: char, ignore_case: bool) -> bool {
    a == b || (ignore_case && a.to_lowercase().eq(b.to_lowercase()))
}

/// Whole-string match; linear in practice, O(n·m) worst case.
pub(crate) fn tokens_match(toks: &[Tok], text: &str, ignore_case: bool) -> bool {
    let t: Vec<char> = text.chars().collect();
    let (mut p, mut s) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while s < t.len() {
        match toks.get(p) {
            Some(Tok::Char(c)) if char_eq(*c, t[s], ignore_case) => {
                p += 1;
                s += 1;
            }
            Some(Tok::One) => {
                p += 1;
                s += 1;
            }
            Some(Tok::Star) => {
                backtrack = Some((p, s));
                p += 1;
            }
            _ => match backtrack {
                Some((star_p, star_s)) => {
                    p = star_p + 1;
                    s = star_s + 1;
                    backtrack = Some((star_p, star_s + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Star)
}

/// ARN match: the six `:`-separated components are matched separately, so a
/// wildcard never spans a component boundary (except within the resource part,
/// which may itself contain `:`). A pattern that does not start with `arn:`
/// (such as `*`) is matched as a whole string; text that is not ARN-shaped
/// never matches an ARN pattern.
pub(crate) fn arn_tokens_match(toks: &[Tok], text: &str) -> bool {
    let mut pat_parts: Vec<&[Tok]> = Vec::with_capacity(6);
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        if pat_parts.len() == 5 {
            break;
        }
        if *t == Tok::Char(':') {
            pat_parts.push(&toks[start..i]);
            start = i + 1;
        }
    }
    pat_parts.push(&toks[start..]);
    let text_parts: Vec<&str> = text.splitn(6, ':').collect();
    if pat_parts.len() != 6 {
        // "*" and other non-ARN patterns match the whole string; a truncated
        // ARN pattern matches nothing.
        let arn_prefix = [
            Tok::Char('a'),
            Tok::Char('r'),
            Tok::Char('n'),
            Tok::Char(':'),
        ];
        return !toks.starts_with(&arn_prefix) && tokens_match(toks, text, false);
    }
    text_parts.len() == 6
        && pat_parts
            .iter()
            .zip(&text_parts)
            .all(|(p, t)| tokens_match(p, t, false))
}

/// Matches `text` against an IAM wildcard pattern (`*`, `?`), without variables.
pub fn wildcard_match(pattern: &str, text: &str, ignore_case: bool) -> bool {
    compile(pattern, true, None).is_some_and(|t| tokens_match(&t, text, ignore_case))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "", false));
        assert!(wildcard_match("*", "anything", false));
        assert!(wildcard_match("ecr:*", "ecr:PutImage", false));
        assert!(wildcard_match("ecr:Batch*", "ecr:BatchGetImage", false));
        assert!(wildcard_match("ecr:*Image", "ecr:BatchGetImage", false));
        assert!(wildcard_match("ecr:*Get*Image", "ecr:BatchGetImage", false));
        assert!(wildcard_match("ecr:?utImage", "ecr:PutImage", false));
        assert!(!wildcard_match("ecr:?utImage", "ecr:utImage", false));
        assert!(!wildcard_match("ecr:Put", "ecr:PutImage", false));
        assert!(!wildcard_match("ecr:putimage", "ecr:PutImage", false));
        assert!(wildcard_match("ECR:putimage", "ecr:PutImage", true));
        assert!(wildcard_match("a*b*c", "aXXbYYbZZc", false));
        assert!(!wildcard_match("a*b*c", "aXXbYYbZZ", false));
        assert!(wildcard_match("**a**", "xax", false));
        assert!(wildcard_match("é?", "éß", false));
        assert!(wildcard_match("ÉX", "éx", true));
        assert!(!wildcard_match("", "a", false));
        assert!(wildcard_match("", "", false));
    }

    #[test]
    fn literal_mode_and_variables() {
        let lookup = |k: &str| match k {
            "aws:username" => Some("alice".to_owned()),
            "weird" => Some("a*b".to_owned()),
            _ => None,
        };
        let vars: VarLookup<'_> = &lookup;
        let t = compile("user/${aws:username}/*", true, Some(vars)).unwrap();
        assert!(tokens_match(&t, "user/alice/x", false));
        assert!(!tokens_match(&t, "user/bob/x", false));
        // Substituted values are literal.
        let t = compile("${weird}", true, Some(vars)).unwrap();
        assert!(tokens_match(&t, "a*b", false));
        assert!(!tokens_match(&t, "aXb", false));
        // Escapes.
        let t = compile("${*}${?}${$}", true, Some(vars)).unwrap();
        assert!(tokens_match(&t, "*?$", false));
        assert!(!tokens_match(&t, "x?$", false));
        // Unresolvable variable: matches nothing; a default resolves it.
        assert!(compile("${aws:userid}", true, Some(vars)).is_none());
        let t = compile("${aws:userid, 'anon'}", true, Some(vars)).unwrap();
        assert!(tokens_match(&t, "anon", false));
        // Without substitution (2008-10-17) the text is literal.
        let t = compile("${aws:username}", true, None).unwrap();
        assert!(tokens_match(&t, "${aws:username}", false));
        // Unterminated.
        let t = compile("${oops", true, Some(vars)).unwrap();
        assert!(tokens_match(&t, "${oops", false));
        // Literal mode.
        let t = compile("a*?", false, None).unwrap();
        assert!(tokens_match(&t, "a*?", false));
        assert!(!tokens_match(&t, "abc", false));
    }

    #[test]
    fn arn_component_matching() {
        let m = |p: &str, t: &str| arn_tokens_match(&compile(p, true, None).unwrap(), t);
        let repo = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";
        assert!(m(
            "arn:aws:ecr:us-east-1:123456789012:repository/team/app",
            repo
        ));
        assert!(m("arn:aws:ecr:*:123456789012:repository/*", repo));
        assert!(m("arn:aws:ecr:us-east-?:*:repository/team/*", repo));
        assert!(m("*", repo));
        // A wildcard does not cross component boundaries.
        assert!(!m("arn:aws:ecr:*:repository/team/app", repo));
        assert!(!m("arn:aws:ecr:us-east-1:*", repo));
        assert!(m("*repository/team/app", repo));
        assert!(m("arn:aws:ecr:us-east-1:*:*", repo));
        assert!(!m(
            "arn:aws:ecr:us-east-1:123456789012:repository/other",
            repo
        ));
        // Case-sensitive.
        assert!(!m(
            "arn:aws:ecr:us-east-1:123456789012:repository/Team/app",
            repo
        ));
        // Text that is not an ARN.
        assert!(!m("arn:aws:ecr:*:*:*", "not-an-arn"));
        // Resource part may contain ':'.
        assert!(m(
            "arn:aws:sns:*:*:topic:*",
            "arn:aws:sns:us-east-1:1:topic:a:b"
        ));
    }
}
