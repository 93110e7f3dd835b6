//! API tests: the real router with `oneshot`, each test on its own fresh database — once on
//! SQLite and once on PostgreSQL (`PARKFLOW_TEST_POSTGRES_URL`, required in CI) — and one test
//! against a real server on port 0.

mod util;
pub use util::*;

/// One test per store for each scenario.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::TestApp::sqlite().await).await
            })*
        }
        on_postgres_in!(postgres: $($name),*);
    };
}

/// A scenario only PostgreSQL has: what its constraints settle by themselves.
macro_rules! on_postgres {
    ($($name:ident),* $(,)?) => {
        on_postgres_in!(postgres_only: $($name),*);
    };
}

/// The scenarios' PostgreSQL tests in `module`, each on a fresh database dropped after it.
macro_rules! on_postgres_in {
    ($module:ident: $($name:ident),*) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = super::TestApp::postgres().await {
                    let cleanup = app.cleanup();
                    super::$name(app).await;
                    cleanup.run().await;
                }
            })*
        }
    };
}

mod accounts;
mod app;
mod basics;
mod defects;
mod delivery;
mod gates;
mod keys;
mod live;
mod monthly;
mod payments;
mod pool;
mod portal;
mod races;
mod reasons;
mod reservations;
use accounts::{
    a_driver_exports_then_erases_their_data, accounts_sessions_and_refresh,
    drivers_reserve_over_http_and_see_only_their_own,
    reminders_warnings_and_no_shows_reach_the_inbox_once,
};
use app::{
    a_quote_before_booking_is_the_bookings_price_and_says_why,
    the_app_is_served_and_drivers_sign_out_and_show_passes,
};
use basics::{
    a_change_writes_its_event_audit_and_message_together_or_not_at_all,
    a_changes_rows_are_written_in_order_and_a_taken_key_writes_none,
    a_proposed_notification_is_stored_once_per_key, bad_input_gets_the_envelope_never_a_500,
    check_in_and_out_charge_the_rates_in_force_during_the_stay,
    concurrent_entries_never_share_a_spot, full_lot_refuses_entry_and_respects_spot_types,
    full_server_on_port_zero_serves_health_and_metrics, lot_creation_writes_lot_spots_and_event,
    rate_schedule_separates_current_and_upcoming,
    the_relay_reads_each_unpublished_event_once_in_order,
};
use defects::{
    a_balance_holds_one_currency, a_key_reused_for_another_request_is_refused,
    concurrent_retries_of_one_booking_all_get_it,
    erasure_ends_waitlist_entries_and_the_export_holds_them,
    framework_rejections_carry_the_envelope, messages_schemes_and_text_hold_up,
    one_unservable_waiter_does_not_stop_the_queue, overflowing_spot_counts_are_refused,
    waitlist_and_availability_apply_the_booking_rules,
    wrong_passwords_throttle_the_guesser_not_the_owner,
};
use delivery::{
    e_mail_and_push_go_out_over_verified_tls, messages_reach_email_and_push_once_with_retries,
};
use gates::{
    a_cancelled_or_late_reservation_opens_nothing, a_pass_opens_the_gate_once_within_its_window,
    ev_spots_take_cars_only_where_the_lot_says_so, lots_and_spots_nearest_to_the_workplace_first,
    one_pass_read_twice_at_once_enters_once,
    openapi_describes_every_route_and_the_docs_page_shows_it, plates_and_drive_ups_at_the_gate,
    reservations_change_before_they_start,
    times_need_an_offset_and_windows_count_local_days_across_dst,
};
use keys::{
    a_booking_in_flight_shows_no_claim_of_its_key, a_booking_keeps_its_answer_in_its_own_change,
};
use live::{
    a_drivers_new_messages_are_pushed_from_any_process,
    live_input_is_checked_and_streams_are_bounded, live_streams_push_each_change_and_resume,
    several_processes_agree_on_live_state,
};
use monthly::{
    a_pass_enters_once_holds_one_plate_and_ends_when_its_payment_is_reversed,
    pass_holders_enter_free_inside_their_rights_and_pay_outside,
    passes_renew_with_a_reminder_and_end_when_cancelled,
    the_last_place_of_a_pass_is_sold_once_under_a_race,
};
use payments::{
    drive_ups_need_the_minimum_balance_and_pay_from_it,
    payments_are_idempotent_and_a_decline_cancels_and_tells, reversals_balances_and_refunds,
    the_first_waiter_gets_the_freed_spot,
};
use pool::{
    a_group_waiting_on_another_transactions_row_holds_no_turn,
    a_reader_left_mid_statement_or_ended_by_the_server_is_never_lent_broken,
    a_request_no_connection_comes_free_for_is_told_when_to_retry,
    bookings_committed_as_one_group_each_get_their_own_outcome,
    readers_are_replaced_when_old_and_closed_when_unused, the_pool_is_as_large_as_configured,
};
use portal::{
    admins_manage_lots_spots_and_inquiries_and_each_action_is_audited,
    admins_sell_monthly_passes_from_the_lot_page, every_text_a_user_sets_is_escaped_on_every_page,
    the_portal_needs_an_admin_sign_in,
};
use races::{
    a_lots_free_spots_are_read_through_its_own_window_index,
    a_spot_freed_since_the_index_read_its_lot_is_found_by_its_own_index,
    an_entry_that_keeps_losing_its_spot_still_gets_one,
    an_event_that_commits_late_is_never_passed_over, first_top_ups_at_once_all_credit_one_balance,
    lost_races_are_told_apart_from_other_failures,
    the_database_refuses_overlapping_holds_of_one_spot, two_answers_to_one_inquiry_keep_one,
};
use reasons::{
    a_rates_reason_reaches_drivers_admins_quotes_and_receipts,
    arrival_chances_come_from_the_published_forecast,
};
use reservations::{
    a_booking_changed_alike_in_a_world_alike_takes_the_same_spot,
    a_full_window_is_refused_without_the_writer,
    a_lot_full_in_the_index_books_the_spot_another_process_freed,
    a_process_with_a_stale_index_still_books_right, a_quote_prices_each_band_of_the_window,
    a_second_index_on_one_store_books_a_spot_the_first_freed,
    a_spot_freed_by_another_process_is_booked_while_the_writer_is_busy,
    a_sync_takes_new_bookings_in_place_and_drops_a_lot_a_change_freed,
    back_to_back_windows_are_allowed_overlaps_are_not, booking_rules_are_enforced,
    bookings_and_stays_extend_at_the_rates_in_force, extensions_never_overlap_under_a_race,
    idempotency_key_returns_the_first_answer, store_agrees_with_a_brute_force_oracle,
    two_hundred_concurrent_requests_for_one_spot_book_it_once,
};

on_both_stores!(
    the_relay_reads_each_unpublished_event_once_in_order,
    a_change_writes_its_event_audit_and_message_together_or_not_at_all,
    a_changes_rows_are_written_in_order_and_a_taken_key_writes_none,
    two_answers_to_one_inquiry_keep_one,
    first_top_ups_at_once_all_credit_one_balance,
    an_entry_that_keeps_losing_its_spot_still_gets_one,
    lost_races_are_told_apart_from_other_failures,
    overflowing_spot_counts_are_refused,
    a_key_reused_for_another_request_is_refused,
    concurrent_retries_of_one_booking_all_get_it,
    a_booking_keeps_its_answer_in_its_own_change,
    a_booking_in_flight_shows_no_claim_of_its_key,
    waitlist_and_availability_apply_the_booking_rules,
    one_unservable_waiter_does_not_stop_the_queue,
    erasure_ends_waitlist_entries_and_the_export_holds_them,
    framework_rejections_carry_the_envelope,
    a_balance_holds_one_currency,
    wrong_passwords_throttle_the_guesser_not_the_owner,
    messages_schemes_and_text_hold_up,
    a_process_with_a_stale_index_still_books_right,
    a_second_index_on_one_store_books_a_spot_the_first_freed,
    a_spot_freed_by_another_process_is_booked_while_the_writer_is_busy,
    a_full_window_is_refused_without_the_writer,
    a_lot_full_in_the_index_books_the_spot_another_process_freed,
    a_booking_changed_alike_in_a_world_alike_takes_the_same_spot,
    a_sync_takes_new_bookings_in_place_and_drops_a_lot_a_change_freed,
    a_pass_opens_the_gate_once_within_its_window,
    a_cancelled_or_late_reservation_opens_nothing,
    plates_and_drive_ups_at_the_gate,
    one_pass_read_twice_at_once_enters_once,
    reservations_change_before_they_start,
    lots_and_spots_nearest_to_the_workplace_first,
    openapi_describes_every_route_and_the_docs_page_shows_it,
    times_need_an_offset_and_windows_count_local_days_across_dst,
    ev_spots_take_cars_only_where_the_lot_says_so,
    accounts_sessions_and_refresh,
    drivers_reserve_over_http_and_see_only_their_own,
    back_to_back_windows_are_allowed_overlaps_are_not,
    booking_rules_are_enforced,
    idempotency_key_returns_the_first_answer,
    two_hundred_concurrent_requests_for_one_spot_book_it_once,
    store_agrees_with_a_brute_force_oracle,
    bookings_and_stays_extend_at_the_rates_in_force,
    extensions_never_overlap_under_a_race,
    a_rates_reason_reaches_drivers_admins_quotes_and_receipts,
    arrival_chances_come_from_the_published_forecast,
    lot_creation_writes_lot_spots_and_event,
    check_in_and_out_charge_the_rates_in_force_during_the_stay,
    full_lot_refuses_entry_and_respects_spot_types,
    bad_input_gets_the_envelope_never_a_500,
    rate_schedule_separates_current_and_upcoming,
    concurrent_entries_never_share_a_spot,
    full_server_on_port_zero_serves_health_and_metrics,
    a_proposed_notification_is_stored_once_per_key,
    reminders_warnings_and_no_shows_reach_the_inbox_once,
    a_driver_exports_then_erases_their_data,
    payments_are_idempotent_and_a_decline_cancels_and_tells,
    reversals_balances_and_refunds,
    drive_ups_need_the_minimum_balance_and_pay_from_it,
    the_first_waiter_gets_the_freed_spot,
    messages_reach_email_and_push_once_with_retries,
    a_quote_prices_each_band_of_the_window,
    the_portal_needs_an_admin_sign_in,
    e_mail_and_push_go_out_over_verified_tls,
    admins_manage_lots_spots_and_inquiries_and_each_action_is_audited,
    every_text_a_user_sets_is_escaped_on_every_page,
    live_streams_push_each_change_and_resume,
    several_processes_agree_on_live_state,
    live_input_is_checked_and_streams_are_bounded,
    the_app_is_served_and_drivers_sign_out_and_show_passes,
    a_quote_before_booking_is_the_bookings_price_and_says_why,
    a_drivers_new_messages_are_pushed_from_any_process,
    pass_holders_enter_free_inside_their_rights_and_pay_outside,
    passes_renew_with_a_reminder_and_end_when_cancelled,
    the_last_place_of_a_pass_is_sold_once_under_a_race,
    admins_sell_monthly_passes_from_the_lot_page,
    a_pass_enters_once_holds_one_plate_and_ends_when_its_payment_is_reversed,
);

on_postgres!(
    the_database_refuses_overlapping_holds_of_one_spot,
    an_event_that_commits_late_is_never_passed_over,
    a_lots_free_spots_are_read_through_its_own_window_index,
    the_pool_is_as_large_as_configured,
    a_request_no_connection_comes_free_for_is_told_when_to_retry,
    bookings_committed_as_one_group_each_get_their_own_outcome,
    a_reader_left_mid_statement_or_ended_by_the_server_is_never_lent_broken,
    readers_are_replaced_when_old_and_closed_when_unused,
    a_group_waiting_on_another_transactions_row_holds_no_turn,
    a_spot_freed_since_the_index_read_its_lot_is_found_by_its_own_index,
);

/// Every scenario (`pub async fn name(app: TestApp)` in a module of this suite) is registered
/// with `on_both_stores!` (or, for what only PostgreSQL has, `on_postgres!`): a scenario
/// written but not listed would never run.
#[test]
fn every_scenario_runs_on_both_stores() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    let listed = |invocation: &str| -> Vec<String> {
        main.split(invocation)
            .nth(1)
            .expect("main.rs registers the scenarios")
            .split(')')
            .next()
            .unwrap()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let on_postgres = listed(concat!("on_postgres", "!("));
    assert!(!on_postgres.is_empty());
    let registered: std::collections::BTreeSet<String> = listed(concat!("on_both_stores", "!("))
        .into_iter()
        .chain(on_postgres)
        .collect();
    let mut files = vec![dir.clone()];
    let mut scenarios = Vec::new();
    while let Some(d) = files.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path != dir.join("main.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("pub async fn ").skip(1) {
                    if let Some((name, rest)) = part.split_once('(')
                        && rest.trim_start().starts_with("app: TestApp")
                    {
                        scenarios.push(name.trim().to_owned());
                    }
                }
            }
        }
    }
    assert!(scenarios.len() > 40, "{scenarios:?}");
    let missing: Vec<&String> = scenarios
        .iter()
        .filter(|s| !registered.contains(*s))
        .collect();
    assert!(missing.is_empty(), "not in on_both_stores!: {missing:?}");
}
