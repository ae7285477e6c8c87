//! Sales-state updates from the lead's words, done deterministically: phone numbers,
//! names, budget, timing, hand-off requests and complaints. Pure: no IO.

use crate::dialog::{SalesState, Stage};
use crate::domain::phone::normalize_phone;

/// What one batch of the lead's messages asks of the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Chat,
    /// The lead asked for a person, or complained: hand off and stay silent.
    Handoff,
}

const HANDOFF_WORDS: &[&str] = &[
    "менеджер",
    "оператор",
    "живой человек",
    "живым человеком",
    "с человеком",
    "позовите",
    "соедините",
    "позвоните мне",
];
const COMPLAINT_WORDS: &[&str] =
    &["жалоб", "претензи", "верните деньги", "возврат денег", "обман", "безобраз", "ужасн", "отвратительн", "суд "];
const CLOSING_WORDS: &[&str] =
    &["оформ", "заказ", "беру", "возьму", "куплю", "покупаю", "бронир", "доставк", "счет", "счёт"];

/// A phone number anywhere in the text, normalized.
pub fn find_phone(text: &str) -> Option<String> {
    let mut candidate = String::new();
    for c in text.chars().chain(std::iter::once('|')) {
        if c.is_ascii_digit() || (c == '+' && candidate.is_empty()) || (!candidate.is_empty() && " -()".contains(c)) {
            candidate.push(c);
        } else {
            if candidate.chars().filter(char::is_ascii_digit).count() >= 10
                && let Some(phone) = normalize_phone(candidate.trim())
            {
                return Some(phone);
            }
            candidate.clear();
        }
    }
    None
}

/// `меня зовут Ольга`, `я Ольга`, `это Ольга` → `Ольга`.
pub fn find_name(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for marker in ["меня зовут ", "моё имя ", "мое имя ", "это ", "я — ", "я - "] {
        if let Some(pos) = lower.find(marker) {
            let rest = &text[pos + marker.len()..];
            let word: String = rest.chars().take_while(|c| c.is_alphabetic() || *c == '-').collect();
            if word.chars().next().is_some_and(char::is_uppercase) && word.chars().count() >= 2 {
                return Some(word);
            }
        }
    }
    None
}

/// `бюджет до 50 000`, `до 50 тысяч`, `в пределах 40000` → the phrase's amount.
pub fn find_budget(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    for marker in ["бюджет", "в пределах", "не дороже", "до "] {
        let Some(pos) = lower.find(marker) else { continue };
        let rest = &lower[pos + marker.len()..];
        let digits: String = rest
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(|c| c.is_ascii_digit() || c.is_whitespace())
            .filter(char::is_ascii_digit)
            .collect();
        if let Ok(mut amount) = digits.parse::<u64>() {
            if rest.contains("тыс") && amount < 10_000 {
                amount *= 1000;
            }
            if amount >= 100 {
                return Some(amount.to_string());
            }
        }
    }
    None
}

pub fn find_timing(text: &str) -> Option<String> {
    let lower = text.to_lowercase();
    [
        "сегодня",
        "завтра",
        "на этой неделе",
        "на следующей неделе",
        "в выходные",
        "срочно",
        "через месяц",
        "в этом месяце",
    ]
    .iter()
    .find(|w| lower.contains(*w))
    .map(|w| w.to_string())
}

pub fn intent(text: &str) -> Intent {
    let lower = text.to_lowercase();
    if HANDOFF_WORDS.iter().chain(COMPLAINT_WORDS).any(|w| lower.contains(w)) { Intent::Handoff } else { Intent::Chat }
}

/// Updates the state from the lead's new text; `interest` is the best catalog match.
pub fn apply(state: &mut SalesState, text: &str, interest: Option<&str>) -> Intent {
    let facts = &mut state.facts;
    if let Some(phone) = find_phone(text) {
        facts.phone = Some(phone);
    }
    if let Some(name) = find_name(text) {
        facts.name = Some(name);
    }
    if let Some(budget) = find_budget(text) {
        facts.budget = Some(budget);
    }
    if let Some(timing) = find_timing(text) {
        facts.timing = Some(timing);
    }
    if let Some(interest) = interest {
        facts.interest = Some(interest.to_string());
    }
    let intent = intent(text);
    let lower = text.to_lowercase();
    state.stage = match (intent, state.stage) {
        (Intent::Handoff, _) => {
            state.needs_human = true;
            Stage::HandedToHuman
        }
        (_, Stage::HandedToHuman) => Stage::HandedToHuman,
        _ if state.facts.phone.is_some() || CLOSING_WORDS.iter().any(|w| lower.contains(w)) => Stage::Closing,
        (_, Stage::Closing) => Stage::Closing,
        _ if interest.is_some() => Stage::Offering,
        (_, Stage::Greeting) => Stage::Qualifying,
        (_, stage) => stage,
    };
    intent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_names_budgets_and_timing_are_extracted() {
        assert_eq!(find_phone("мой номер +7 (999) 123-45-67, звоните").as_deref(), Some("79991234567"));
        assert_eq!(find_phone("89991234567").as_deref(), Some("79991234567"));
        assert_eq!(find_phone("диван 160 на 200"), None);
        assert_eq!(find_name("Добрый день, меня зовут Ольга").as_deref(), Some("Ольга"));
        assert_eq!(find_name("это Пётр, по поводу дивана").as_deref(), Some("Пётр"));
        assert_eq!(find_name("это очень дорого"), None);
        assert_eq!(find_budget("бюджет до 50 000 рублей").as_deref(), Some("50000"));
        assert_eq!(find_budget("хочу до 40 тысяч").as_deref(), Some("40000"));
        assert_eq!(find_timing("нужно завтра").as_deref(), Some("завтра"));
    }

    #[test]
    fn stages_move_forward_and_handoff_wins() {
        let mut state = SalesState::default();
        assert_eq!(apply(&mut state, "Здравствуйте", None), Intent::Chat);
        assert_eq!(state.stage, Stage::Qualifying);
        apply(&mut state, "Есть диваны?", Some("Диван «Милан»"));
        assert_eq!(state.stage, Stage::Offering);
        assert_eq!(state.facts.interest.as_deref(), Some("Диван «Милан»"));
        apply(&mut state, "Беру, мой телефон 89991234567", None);
        assert_eq!(state.stage, Stage::Closing);
        assert_eq!(apply(&mut state, "Позовите менеджера", None), Intent::Handoff);
        assert_eq!(state.stage, Stage::HandedToHuman);
        assert!(state.needs_human);
        assert_eq!(intent("Это обман, верните деньги"), Intent::Handoff);
    }
}
