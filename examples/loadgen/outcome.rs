//! What every mode hands back: one JSON line for the machine and a summary for a person, and the
//! rounding their numbers share.

use serde_json::{Value, json};

/// The result of one run: its JSON line and its human summary.
pub struct Outcome {
    pub json: Value,
    pub summary: String,
}

/// A JSON number rounded to `places` decimals; null when not finite.
pub fn round(value: f64, places: i32) -> Value {
    if !value.is_finite() {
        return Value::Null;
    }
    let scale = 10f64.powi(places);
    json!((value * scale).round() / scale)
}
