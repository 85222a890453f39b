//! Choosing a subscription's route for an event.
//!
//! daprd evaluates CEL; the services here only route on the event type, so
//! this understands `event.type == "x"` and alternatives joined with `||`.
//! A rule it cannot read never matches (and is reported once at start).

use todo_core::dapr::runtime::TopicRoutes;

/// The path for an event of `event_type`: the first matching rule's, else
/// the default; None when nothing applies (the event is acknowledged
/// without delivery, as daprd does).
pub fn route(routes: Option<&TopicRoutes>, event_type: &str) -> Option<String> {
    let Some(routes) = routes else {
        return Some(String::new());
    };
    for rule in &routes.rules {
        if matches(&rule.r#match, event_type) == Some(true) {
            return Some(rule.path.clone());
        }
    }
    (!routes.default.is_empty() || routes.rules.is_empty()).then(|| routes.default.clone())
}

/// Whether `expression` matches; None when it is not understood.
pub fn matches(expression: &str, event_type: &str) -> Option<bool> {
    let mut any = false;
    for alternative in expression.split("||") {
        let (left, right) = alternative.split_once("==")?;
        if left.trim() != "event.type" {
            return None;
        }
        let value = right.trim();
        let quoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))?;
        any |= quoted == event_type;
    }
    Some(any)
}

#[cfg(test)]
mod tests {
    use todo_core::dapr::runtime::TopicRule;

    use super::*;

    fn routes(rules: &[(&str, &str)], default: &str) -> TopicRoutes {
        TopicRoutes {
            rules: rules
                .iter()
                .map(|(m, p)| TopicRule {
                    r#match: (*m).into(),
                    path: (*p).into(),
                })
                .collect(),
            default: default.into(),
        }
    }

    #[test]
    fn first_matching_rule_then_default() {
        let r = routes(
            &[
                (r#"event.type == "task.completed""#, "/done"),
                (
                    r#"event.type == 'task.created' || event.type == "task.updated""#,
                    "/changed",
                ),
            ],
            "/other",
        );
        assert_eq!(route(Some(&r), "task.completed").as_deref(), Some("/done"));
        assert_eq!(route(Some(&r), "task.updated").as_deref(), Some("/changed"));
        assert_eq!(route(Some(&r), "task.deleted").as_deref(), Some("/other"));
    }

    #[test]
    fn no_match_and_no_default_means_no_delivery() {
        let r = routes(&[(r#"event.type == "a""#, "/a")], "");
        assert_eq!(route(Some(&r), "b"), None);
        assert_eq!(route(Some(&routes(&[], "")), "b").as_deref(), Some(""));
        assert_eq!(route(None, "b").as_deref(), Some(""));
    }

    #[test]
    fn unreadable_expressions_never_match() {
        assert_eq!(matches("event.data.x > 3", "a"), None);
        assert_eq!(matches(r#"event.type == a"#, "a"), None);
    }
}
