//! `parkflow price evaluate`: the closed loop runs every policy on the same demand and reports
//! what each did.

use parkflow::pricing_eval::{EvalOptions, evaluate};

#[test]
fn every_policy_meets_the_same_demand_and_the_report_says_what_each_did() {
    let e = evaluate(EvalOptions {
        weeks: 4,
        lots: 6,
        seed: 3,
    });
    let text = e.render();
    let [fixed, step, ahead] = &e.results[..] else {
        panic!("{text}")
    };
    assert_eq!(
        (fixed.policy, step.policy, ahead.policy),
        ("static", "SFpark step", "forecast-aware")
    );
    // Three evaluated weeks of 6 lots, 17 priced hours a day (07:00 to midnight), for all.
    for r in &e.results {
        assert_eq!(r.lot_hours, 3 * 7 * 6 * 17, "{text}");
        assert!(r.revenue_cents > 0, "{text}");
    }
    assert_eq!(fixed.changes, 0, "{text}");
    assert!(step.changes > 0 && ahead.changes > 0, "{text}");
    // The step rule moves by 25 or 50 cents; the forecast-aware policy by up to two dollars.
    assert!((25.0..=50.0).contains(&step.mean_change_cents), "{text}");
    assert!(ahead.mean_change_cents <= 200.0, "{text}");
    assert!(text.contains("× static"), "{text}");
}

/// The goal of the pricing loop: time in the 60–80 % band at least 1.5 × static pricing's, with
/// revenue not below static's — on several independent simulated worlds.
#[test]
fn forecast_aware_pricing_beats_static_in_band_without_losing_revenue() {
    for seed in [42, 7, 2026] {
        let e = evaluate(EvalOptions {
            weeks: 6,
            lots: 12,
            seed,
        });
        let text = e.render();
        let (fixed, ahead) = (e.get("static").unwrap(), e.get("forecast-aware").unwrap());
        assert!(
            ahead.in_band_share() >= 1.5 * fixed.in_band_share(),
            "seed {seed}: {text}"
        );
        assert!(
            ahead.revenue_cents >= fixed.revenue_cents,
            "seed {seed}: {text}"
        );
    }
}
