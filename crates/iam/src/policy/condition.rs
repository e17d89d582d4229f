//! Condition operators (IAM User Guide, "IAM JSON policy elements: Condition
//! operators"; "Set operators for multivalued context keys").
//!
//! Semantics implemented:
//! - values listed for one key are ORed; keys and operators are ANDed;
//! - negated operators (`StringNotEquals`, `NotIpAddress`, …) hold when the
//!   context value matches none of the listed values;
//! - a key missing from the request context makes a condition false, except:
//!   negated operators are then true, `…IfExists` is true, `ForAllValues:` is
//!   true and `ForAnyValue:` false; `Null` tests presence itself.

use std::net::IpAddr;

use super::eval::RequestContext;
use super::pattern::{arn_tokens_match, compile, tokens_match, VarLookup};
use super::Condition;
use crate::time::parse_iso8601;

/// The operator without qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum OperatorBase {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

const BASES: [(&str, OperatorBase); 27] = [
    ("StringEquals", OperatorBase::StringEquals),
    ("StringNotEquals", OperatorBase::StringNotEquals),
    (
        "StringEqualsIgnoreCase",
        OperatorBase::StringEqualsIgnoreCase,
    ),
    (
        "StringNotEqualsIgnoreCase",
        OperatorBase::StringNotEqualsIgnoreCase,
    ),
    ("StringLike", OperatorBase::StringLike),
    ("StringNotLike", OperatorBase::StringNotLike),
    ("NumericEquals", OperatorBase::NumericEquals),
    ("NumericNotEquals", OperatorBase::NumericNotEquals),
    ("NumericLessThan", OperatorBase::NumericLessThan),
    ("NumericLessThanEquals", OperatorBase::NumericLessThanEquals),
    ("NumericGreaterThan", OperatorBase::NumericGreaterThan),
    (
        "NumericGreaterThanEquals",
        OperatorBase::NumericGreaterThanEquals,
    ),
    ("DateEquals", OperatorBase::DateEquals),
    ("DateNotEquals", OperatorBase::DateNotEquals),
    ("DateLessThan", OperatorBase::DateLessThan),
    ("DateLessThanEquals", OperatorBase::DateLessThanEquals),
    ("DateGreaterThan", OperatorBase::DateGreaterThan),
    ("DateGreaterThanEquals", OperatorBase::DateGreaterThanEquals),
    ("Bool", OperatorBase::Bool),
    ("BinaryEquals", OperatorBase::BinaryEquals),
    ("IpAddress", OperatorBase::IpAddress),
    ("NotIpAddress", OperatorBase::NotIpAddress),
    ("ArnEquals", OperatorBase::ArnEquals),
    ("ArnLike", OperatorBase::ArnLike),
    ("ArnNotEquals", OperatorBase::ArnNotEquals),
    ("ArnNotLike", OperatorBase::ArnNotLike),
    ("Null", OperatorBase::Null),
];

impl OperatorBase {
    /// The operator's name as written in policies.
    pub fn name(self) -> &'static str {
        BASES
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("", |(n, _)| n)
    }

    /// Whether the operator is a negated match.
    pub fn is_negated(self) -> bool {
        use OperatorBase::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | NumericNotEquals
                | DateNotEquals
                | NotIpAddress
                | ArnNotEquals
                | ArnNotLike
        )
    }
}

/// `ForAnyValue:` / `ForAllValues:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// At least one context value must satisfy the operator.
    ForAnyValue,
    /// Every context value must satisfy it (vacuously true when there are none).
    ForAllValues,
}

/// A full operator: optional set qualifier, base, optional `IfExists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionOperator {
    /// `ForAnyValue:`/`ForAllValues:`, if given.
    pub qualifier: Option<SetQualifier>,
    /// The base operator.
    pub base: OperatorBase,
    /// The `IfExists` suffix.
    pub if_exists: bool,
}

impl ConditionOperator {
    /// Parses an operator name such as `ForAllValues:StringLikeIfExists`
    /// (ASCII case-insensitively). `NullIfExists` does not exist.
    pub fn parse(name: &str) -> Option<ConditionOperator> {
        let strip_ci = |s: &'_ str, prefix: &str| -> Option<usize> {
            // Compare bytes: slicing the str could split a multi-byte character.
            (s.len() >= prefix.len()
                && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
            .then_some(prefix.len())
        };
        let mut rest = name;
        let mut qualifier = None;
        for (prefix, q) in [
            ("ForAnyValue:", SetQualifier::ForAnyValue),
            ("ForAllValues:", SetQualifier::ForAllValues),
        ] {
            if let Some(n) = strip_ci(rest, prefix) {
                rest = &rest[n..];
                qualifier = Some(q);
                break;
            }
        }
        let mut if_exists = false;
        if rest.len() > 8 && rest.is_char_boundary(rest.len() - 8) {
            let (head, tail) = rest.split_at(rest.len() - 8);
            if tail.eq_ignore_ascii_case("IfExists") {
                rest = head;
                if_exists = true;
            }
        }
        let base = BASES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(rest))
            .map(|(_, b)| *b)?;
        if base == OperatorBase::Null && (if_exists || qualifier.is_some()) {
            return None;
        }
        Some(ConditionOperator {
            qualifier,
            base,
            if_exists,
        })
    }

    /// The canonical name, e.g. `ForAnyValue:StringLikeIfExists`.
    pub fn name(&self) -> String {
        let q = match self.qualifier {
            Some(SetQualifier::ForAnyValue) => "ForAnyValue:",
            Some(SetQualifier::ForAllValues) => "ForAllValues:",
            None => "",
        };
        let suffix = if self.if_exists { "IfExists" } else { "" };
        format!("{q}{}{suffix}", self.base.name())
    }

    /// Checks that a policy value suits the operator.
    pub(crate) fn validate_value(&self, value: &str) -> Result<(), String> {
        use OperatorBase::*;
        let ok = match self.base {
            NumericEquals
            | NumericNotEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => parse_number(value).is_some(),
            DateEquals
            | DateNotEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => parse_date(value).is_some(),
            Bool | Null => parse_bool(value).is_some(),
            IpAddress | NotIpAddress => parse_cidr(value).is_some(),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "value \"{value}\" is not valid for the {} operator",
                self.base.name()
            ))
        }
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// ISO-8601 or epoch seconds, as IAM date conditions accept.
fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok();
    }
    parse_iso8601(s).ok()
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.trim().split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s.trim(), None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) && l.len() <= 3 => {
            l.parse::<u8>().ok()?
        }
        Some(_) => return None,
        None => max,
    };
    (len <= max).then_some((ip, len))
}

/// An address block as `IpAddress` conditions write it (`10.0.0.0/8`, `::1`),
/// for callers that match addresses the same way (trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrBlock(IpAddr, u8);

impl CidrBlock {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address.
    pub fn parse(s: &str) -> Option<CidrBlock> {
        parse_cidr(s).map(|(ip, len)| CidrBlock(ip, len))
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip_in(ip, (self.0, self.1))
    }
}

fn ip_in(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Whether one context value satisfies one policy value under the operator's
/// positive form.
fn value_matches(
    base: OperatorBase,
    ctx_value: &str,
    policy_value: &str,
    vars: Option<VarLookup<'_>>,
) -> bool {
    use OperatorBase::*;
    match base {
        StringEquals | StringNotEquals => {
            compile(policy_value, false, vars).is_some_and(|t| tokens_match(&t, ctx_value, false))
        }
        StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
            compile(policy_value, false, vars).is_some_and(|t| tokens_match(&t, ctx_value, true))
        }
        StringLike | StringNotLike => {
            compile(policy_value, true, vars).is_some_and(|t| tokens_match(&t, ctx_value, false))
        }
        ArnEquals | ArnLike | ArnNotEquals | ArnNotLike => {
            compile(policy_value, true, vars).is_some_and(|t| arn_tokens_match(&t, ctx_value))
        }
        BinaryEquals => ctx_value == policy_value,
        Bool => {
            matches!((parse_bool(ctx_value), parse_bool(policy_value)), (Some(a), Some(b)) if a == b)
        }
        NumericEquals
        | NumericNotEquals
        | NumericLessThan
        | NumericLessThanEquals
        | NumericGreaterThan
        | NumericGreaterThanEquals => {
            let (Some(c), Some(p)) = (parse_number(ctx_value), parse_number(policy_value)) else {
                return false;
            };
            match base {
                NumericEquals | NumericNotEquals => c == p,
                NumericLessThan => c < p,
                NumericLessThanEquals => c <= p,
                NumericGreaterThan => c > p,
                _ => c >= p,
            }
        }
        DateEquals
        | DateNotEquals
        | DateLessThan
        | DateLessThanEquals
        | DateGreaterThan
        | DateGreaterThanEquals => {
            let (Some(c), Some(p)) = (parse_date(ctx_value), parse_date(policy_value)) else {
                return false;
            };
            match base {
                DateEquals | DateNotEquals => c == p,
                DateLessThan => c < p,
                DateLessThanEquals => c <= p,
                DateGreaterThan => c > p,
                _ => c >= p,
            }
        }
        IpAddress | NotIpAddress => {
            let (Ok(ip), Some(net)) =
                (ctx_value.trim().parse::<IpAddr>(), parse_cidr(policy_value))
            else {
                return false;
            };
            ip_in(ip, net)
        }
        Null => false,
    }
}

/// Whether a condition holds for the request. `vars`: substitute policy variables.
pub(crate) fn condition_holds(cond: &Condition, ctx: &RequestContext, vars: bool) -> bool {
    let op = cond.operator;
    let ctx_values = ctx.values(&cond.key).filter(|v| !v.is_empty());
    if op.base == OperatorBase::Null {
        let absent = ctx_values.is_none();
        return cond.values.iter().any(|v| parse_bool(v) == Some(absent));
    }
    let Some(ctx_values) = ctx_values else {
        return op.if_exists
            || match op.qualifier {
                Some(SetQualifier::ForAllValues) => true,
                Some(SetQualifier::ForAnyValue) => false,
                None => op.base.is_negated(),
            };
    };
    let lookup = |key: &str| ctx.single_value(key);
    let vars: Option<VarLookup<'_>> = if vars { Some(&lookup) } else { None };
    let negated = op.base.is_negated();
    let satisfies = |v: &String| {
        let any = cond
            .values
            .iter()
            .any(|pv| value_matches(op.base, v, pv, vars));
        any != negated
    };
    match op.qualifier {
        Some(SetQualifier::ForAllValues) => ctx_values.iter().all(satisfies),
        Some(SetQualifier::ForAnyValue) => ctx_values.iter().any(satisfies),
        None if negated => ctx_values.iter().all(satisfies),
        None => ctx_values.iter().any(satisfies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let op = ConditionOperator::parse("ForAnyValue:StringLikeIfExists").unwrap();
        assert_eq!(op.qualifier, Some(SetQualifier::ForAnyValue));
        assert_eq!(op.base, OperatorBase::StringLike);
        assert!(op.if_exists);
        assert_eq!(op.name(), "ForAnyValue:StringLikeIfExists");
        let op = ConditionOperator::parse("forallvalues:stringequals").unwrap();
        assert_eq!(op.name(), "ForAllValues:StringEquals");
        for (name, base) in BASES {
            let op = ConditionOperator::parse(name).unwrap();
            assert_eq!(op.base, base);
            assert_eq!(op.name(), name);
            if base != OperatorBase::Null {
                assert!(
                    ConditionOperator::parse(&format!("{name}IfExists"))
                        .unwrap()
                        .if_exists
                );
            }
        }
        for bad in [
            "",
            "StringEqual",
            "NullIfExists",
            "ForAnyValue:Null",
            "IfExists",
            "ForSomeValues:StringEquals",
            "StringEqualsIfExistsIfExists",
            "Ståring",
        ] {
            assert_eq!(ConditionOperator::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn multi_byte_characters_where_a_qualifier_would_end_are_no_panic() {
        // Found by the fuzzer (crates/fuzzing, iam_policy): the prefix check sliced
        // the str inside a character and panicked.
        for bad in [
            "StringEq\u{fffd}uals",
            "ForAnyValu\u{e9}:StringLike",
            "ForAllValues\u{1f600}",
        ] {
            assert_eq!(ConditionOperator::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn value_validation() {
        let v = |op: &str, val: &str| ConditionOperator::parse(op).unwrap().validate_value(val);
        assert!(v("NumericLessThan", "10").is_ok());
        assert!(v("NumericLessThan", "-1.5e3").is_ok());
        assert!(v("NumericLessThan", "ten").is_err());
        assert!(v("NumericLessThan", "NaN").is_err());
        assert!(v("DateGreaterThan", "2026-11-26T14:45:00Z").is_ok());
        assert!(v("DateGreaterThan", "1795704300").is_ok());
        assert!(v("DateGreaterThan", "tomorrow").is_err());
        assert!(v("Bool", "TRUE").is_ok());
        assert!(v("Bool", "yes").is_err());
        assert!(v("Null", "false").is_ok());
        assert!(v("IpAddress", "10.0.0.0/8").is_ok());
        assert!(v("NotIpAddress", "2001:db8::/32").is_ok());
        assert!(v("IpAddress", "203.0.113.7").is_ok());
        assert!(v("IpAddress", "10.0.0.0/33").is_err());
        assert!(v("IpAddress", "10.0.0.0/").is_err());
        assert!(v("IpAddress", "10.0.0/8").is_err());
        assert!(v("StringEquals", "anything ${at} all").is_ok());
    }

    #[test]
    fn cidr_matching() {
        let net = parse_cidr("10.1.0.0/16").unwrap();
        assert!(ip_in("10.1.200.3".parse().unwrap(), net));
        assert!(!ip_in("10.2.0.1".parse().unwrap(), net));
        assert!(!ip_in("::1".parse().unwrap(), net));
        let all = parse_cidr("0.0.0.0/0").unwrap();
        assert!(ip_in("192.0.2.1".parse().unwrap(), all));
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert!(ip_in("2001:db8:1::5".parse().unwrap(), v6));
        assert!(!ip_in("2001:db9::5".parse().unwrap(), v6));
        let all6 = parse_cidr("::/0").unwrap();
        assert!(ip_in("2001:db9::5".parse().unwrap(), all6));
        let host = parse_cidr("203.0.113.7").unwrap();
        assert!(ip_in("203.0.113.7".parse().unwrap(), host));
        assert!(!ip_in("203.0.113.8".parse().unwrap(), host));
    }
}
