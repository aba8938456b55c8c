//! Card checks: Luhn, expiry, CVC, and the decline test card.

use serde::{Deserialize, Serialize};

/// A card number that always declines (status `failed`).
pub const DECLINE_CARD: &str = "4000000000000002";

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Card {
    pub card_number: String,
    pub card_exp_month: String,
    pub card_exp_year: String,
    pub card_cvc: String,
}

pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// `Ok("succeeded" | "failed")`, or why the card data is invalid.
pub fn outcome(card: &Card, now_year: i32, now_month: u32) -> Result<&'static str, String> {
    let number: String = card
        .card_number
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if !(12..=19).contains(&number.len()) || !number.chars().all(|c| c.is_ascii_digit()) {
        return Err("card_number must hold 12 to 19 digits".into());
    }
    let month: u32 = card
        .card_exp_month
        .trim()
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or("card_exp_month must be 1..12")?;
    let year: i32 = card
        .card_exp_year
        .trim()
        .parse()
        .map_err(|_| "card_exp_year must be a year")?;
    let year = if year < 100 { 2000 + year } else { year };
    let cvc = card.card_cvc.trim();
    if !(3..=4).contains(&cvc.len()) || !cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err("card_cvc must hold 3 or 4 digits".into());
    }
    if number == DECLINE_CARD {
        return Ok("failed");
    }
    if !luhn(&number) {
        return Err("card_number fails the Luhn check".into());
    }
    if (year, month) < (now_year, now_month) {
        return Err("the card has expired".into());
    }
    Ok("succeeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(n: &str, m: &str, y: &str) -> Card {
        Card {
            card_number: n.into(),
            card_exp_month: m.into(),
            card_exp_year: y.into(),
            card_cvc: "123".into(),
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(
            outcome(&card("4242424242424242", "10", "35"), 2026, 11),
            Ok("succeeded")
        );
        assert_eq!(
            outcome(&card(DECLINE_CARD, "10", "35"), 2026, 11),
            Ok("failed")
        );
        assert!(outcome(&card("4242424242424241", "10", "35"), 2026, 11)
            .unwrap_err()
            .contains("Luhn"));
        assert!(outcome(&card("4242424242424242", "10", "25"), 2026, 11)
            .unwrap_err()
            .contains("expired"));
        assert!(outcome(&card("4242424242424242", "13", "35"), 2026, 11).is_err());
        assert_eq!(
            outcome(&card("4242424242424242", "11", "2026"), 2026, 11),
            Ok("succeeded")
        );
    }
}
