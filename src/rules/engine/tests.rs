use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn rule(id: i64, priority: i64, keyword: &str, mode: MatchMode, case_sensitive: bool) -> Rule {
    Rule {
        id,
        priority,
        device_id: None,
        matcher: Matcher::parse(keyword, mode, case_sensitive).unwrap(),
        reply: format!("reply {id}"),
        stop: true,
        cooldown_seconds: 0,
    }
}

fn hits(keyword: &str, mode: MatchMode, case_sensitive: bool, text: &str) -> bool {
    Matcher::parse(keyword, mode, case_sensitive).unwrap().is_match(&Text::new(text))
}

const VARS: Vars<'static> =
    Vars { name: Some("Budi"), phone: "6281234567890", message: "hi", date: "2026-11-26" };

#[test]
fn the_seed_example_matches_whatever_the_case() {
    assert!(hits("harga", MatchMode::Contains, false, "Berapa HARGA paket?"));
    assert!(!hits("harga", MatchMode::Contains, true, "Berapa HARGA paket?"));
    let reply = render("Harga mulai 10rb, {name}", &VARS);
    assert_eq!(reply, "Harga mulai 10rb, Budi");
}

#[test]
fn each_mode_compares_as_its_name_says() {
    use MatchMode::*;
    let cases: &[(&str, MatchMode, &str, bool)] = &[
        ("info", Exact, "info", true),
        ("info", Exact, "  INFO \n", true),
        ("info", Exact, "info dong", false),
        ("info", Contains, "minta info dong", true),
        ("info", Contains, "inf", false),
        ("info", StartsWith, "info harga", true),
        ("info", StartsWith, "minta info", false),
        (r"^order\s+\d+$", Regex, "ORDER 123", true),
        (r"^order\s+\d+$", Regex, "order abc", false),
        (r"\d{4}", Regex, "kode 1234 ya", true),
    ];
    for (keyword, mode, text, expected) in cases {
        assert_eq!(hits(keyword, *mode, false, text), *expected, "{keyword:?} {mode} {text:?}");
    }
}

#[test]
fn case_folding_is_unicode_aware() {
    assert!(hits("ÇAY", MatchMode::Exact, false, "çay"));
    assert!(hits("straße", MatchMode::Contains, false, "STRAßE bitte"));
    assert!(hits("ΣΟΦΙΑ", MatchMode::StartsWith, false, "σοφια εδώ"));
    assert!(hits("çay", MatchMode::Regex, false, "ÇAY"));
    assert!(!hits("çay", MatchMode::Regex, true, "ÇAY"));
}

#[test]
fn the_highest_priority_wins_then_the_oldest() {
    let rules = vec![
        rule(1, 0, "harga", MatchMode::Contains, false),
        rule(2, 10, "harga", MatchMode::Contains, false),
        rule(3, 10, "harga", MatchMode::Contains, false),
        rule(4, 99, "nothing", MatchMode::Contains, false),
    ];
    let text = Text::new("harga?");
    assert_eq!(first_match(&rules, 1, &text).map(|r| r.id), Some(2));
    let order: Vec<i64> = matching(&rules, 1, &text).iter().map(|r| r.id).collect();
    assert_eq!(order, vec![2, 3, 1]);
}

#[test]
fn a_device_rule_only_answers_on_its_device() {
    let mut on_7 = rule(1, 5, "halo", MatchMode::Contains, false);
    on_7.device_id = Some(7);
    let everywhere = rule(2, 0, "halo", MatchMode::Contains, false);
    let rules = vec![on_7, everywhere];
    let text = Text::new("halo");
    assert_eq!(first_match(&rules, 7, &text).map(|r| r.id), Some(1));
    assert_eq!(first_match(&rules, 8, &text).map(|r| r.id), Some(2));
}

#[test]
fn invalid_and_oversized_regexes_are_refused_on_the_keyword() {
    let err = Matcher::parse("(unclosed", MatchMode::Regex, false).unwrap_err();
    assert!(matches!(err, RuleError::InvalidRegex(_)), "{err:?}");
    assert_eq!(err.field(), "keyword");
    assert!(err.to_string().contains("unclosed"), "{err}");
    let err = Matcher::parse(r"\w{1000}\w{1000}", MatchMode::Regex, false).unwrap_err();
    assert_eq!(err, RuleError::RegexTooLarge);
    let err = Matcher::parse(&"(".repeat(200), MatchMode::Regex, false).unwrap_err();
    assert_eq!(err.field(), "keyword");
    assert_eq!(Matcher::parse("  ", MatchMode::Contains, false).unwrap_err(), RuleError::EmptyKeyword);
    assert_eq!(MatchMode::parse("fuzzy").unwrap_err().field(), "match");
    assert_eq!(MatchMode::parse("STARTS_WITH").unwrap(), MatchMode::StartsWith);
}

#[test]
fn a_pathological_regex_runs_in_linear_time() {
    let m = Matcher::parse("(a+)+$", MatchMode::Regex, true).unwrap();
    let text = Text::new(&format!("{}b", "a".repeat(50_000)));
    let started = Instant::now();
    assert!(!m.is_match(&text), "the classic catastrophic case for backtracking engines");
    let m = Matcher::parse("^(a|aa)+$", MatchMode::Regex, true).unwrap();
    assert!(!m.is_match(&text));
    assert!(m.is_match(&Text::new(&"a".repeat(50_000))));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn placeholders_are_filled_and_unknown_ones_stay() {
    let out = render("{name} ({phone}) said \"{message}\" on {date}; {unknown} {name", &VARS);
    assert_eq!(out, "Budi (6281234567890) said \"hi\" on 2026-11-26; {unknown} {name");
    let anonymous = Vars { name: Some("  "), ..VARS };
    assert_eq!(render("Hi {name}", &anonymous), "Hi 6281234567890");
    let none = Vars { name: None, ..VARS };
    assert_eq!(render("Hi {name}", &none), "Hi 6281234567890");
    assert_eq!(render("{{name}}", &VARS), "{Budi}");
}

#[test]
fn a_rendered_reply_is_cut_at_the_text_limit() {
    let big = "x".repeat(MAX_RENDERED_CHARS);
    let vars = Vars { message: &big, ..VARS };
    assert_eq!(render("{message}{message}", &vars).chars().count(), MAX_RENDERED_CHARS);
}

fn mode() -> impl Strategy<Value = MatchMode> {
    prop::sample::select(MatchMode::ALL.to_vec())
}

proptest! {
    #[test]
    fn exact_implies_starts_with_implies_contains(keyword in "\\PC{1,12}", text in "\\PC{0,40}", cs: bool) {
        prop_assume!(!keyword.trim().is_empty());
        let t = Text::new(&text);
        let exact = Matcher::parse(&keyword, MatchMode::Exact, cs).unwrap().is_match(&t);
        let starts = Matcher::parse(&keyword, MatchMode::StartsWith, cs).unwrap().is_match(&t);
        let contains = Matcher::parse(&keyword, MatchMode::Contains, cs).unwrap().is_match(&t);
        prop_assert!(!exact || starts);
        prop_assert!(!starts || contains);
    }

    #[test]
    fn a_keyword_always_finds_itself_in_any_surrounding(
        keyword in "[a-zA-Z0-9 ]{1,10}", before in "\\PC{0,10}", after in "\\PC{0,10}", mode in mode(), cs: bool,
    ) {
        prop_assume!(!keyword.trim().is_empty());
        let pattern = if mode == MatchMode::Regex { regex::escape(keyword.trim()) } else { keyword.clone() };
        let m = Matcher::parse(&pattern, mode, cs).unwrap();
        let text = match mode {
            MatchMode::Exact => keyword.clone(),
            MatchMode::StartsWith => format!("{}{after}", keyword.trim()),
            _ => format!("{before} {} {after}", keyword.trim()),
        };
        prop_assert!(m.is_match(&Text::new(&text)), "{pattern:?} vs {text:?}");
    }

    #[test]
    fn case_sensitive_matches_are_case_insensitive_matches(keyword in "\\PC{1,8}", text in "\\PC{0,30}", mode in mode()) {
        prop_assume!(!keyword.trim().is_empty() && mode != MatchMode::Regex);
        let t = Text::new(&text);
        let strict = Matcher::parse(&keyword, mode, true).unwrap().is_match(&t);
        let loose = Matcher::parse(&keyword, mode, false).unwrap().is_match(&t);
        prop_assert!(!strict || loose);
    }

    #[test]
    fn nothing_panics_on_arbitrary_input(keyword in "\\PC{0,60}", text in "\\PC{0,200}", mode in mode(), cs: bool) {
        if let Ok(m) = Matcher::parse(&keyword, mode, cs) {
            let _ = m.is_match(&Text::new(&text));
        }
        let _ = render(&keyword, &Vars { message: &text, ..VARS });
    }

    #[test]
    fn sender_text_is_inserted_literally_and_never_expanded(
        message in "(\\{name\\}|\\{message\\}|\\{date\\}|\\PC){0,30}",
        name in "(\\{phone\\}|\\PC){0,10}",
    ) {
        let vars = Vars { name: Some(&name), message: &message, ..VARS };
        prop_assert_eq!(render("{message}", &vars), message.clone());
        let shown = if name.trim().is_empty() { VARS.phone } else { name.trim() };
        prop_assert_eq!(render("[{name}]", &vars), format!("[{shown}]"));
    }

    #[test]
    fn templates_without_known_placeholders_are_unchanged(template in "[^{]{0,50}") {
        prop_assert_eq!(render(&template, &VARS), template);
    }

    #[test]
    fn the_first_match_is_the_best_matching_rule(
        specs in prop::collection::vec((-5i64..5, prop::sample::select(vec!["a", "b", "ab"]), mode(), any::<bool>()), 1..12),
        text in "[abAB ]{0,6}",
    ) {
        let rules: Vec<Rule> = specs
            .iter()
            .enumerate()
            .map(|(i, (p, k, m, cs))| rule(i as i64 + 1, *p, k, *m, *cs))
            .collect();
        let t = Text::new(&text);
        let best = rules
            .iter()
            .filter(|r| r.matcher.is_match(&t))
            .max_by(|a, b| a.priority.cmp(&b.priority).then(b.id.cmp(&a.id)))
            .map(|r| r.id);
        prop_assert_eq!(first_match(&rules, 1, &t).map(|r| r.id), best);
    }
}
