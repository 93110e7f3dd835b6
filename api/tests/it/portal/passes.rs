//! Monthly passes from a lot's page: a product put on sale from the form, listed with its
//! places held, stopped from its button, each action audited.

use crate::TestApp;
use axum::http::StatusCode;
use serde_json::json;

pub async fn admins_sell_monthly_passes_from_the_lot_page(app: TestApp) {
    let session = app.admin_session("passes@example.com").await;
    let lot = app.with_lot(json!({"car": 3})).await;
    let lot_page = format!("/admin/lots/{lot}");
    let page = app.page("GET", &lot_page, &session, None).await;
    assert!(page.text.contains("None on sale."), "{}", page.text);

    // Weekdays (Saturday and Sunday unticked), 07–19 h, cars, 89.00 a month, 2 places, a
    // spot kept.
    let created = app
        .submit(
            &format!("{lot_page}/pass-products"),
            &session,
            &[
                ("name", "Commuter <weekday>"),
                ("day_mon", "on"),
                ("day_tue", "on"),
                ("day_wed", "on"),
                ("day_thu", "on"),
                ("day_fri", "on"),
                ("from_hour", "7"),
                ("until_hour", "19"),
                ("vehicle_car", "on"),
                ("price_cents", "8900"),
                ("spots", "2"),
                ("keeps_spot", "on"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let listed = app
        .call("GET", &format!("/v1/lots/{lot}/pass-products"), None, None)
        .await;
    let product = &listed.body["items"][0];
    assert_eq!(product["rights"], "mon–fri 07–19 h", "{}", listed.body);
    assert_eq!(product["vehicleTypes"], json!(["car"]));
    assert_eq!(product["keepsSpot"], true);
    assert_eq!(product["available"], 2);
    let page = app.page("GET", &lot_page, &session, None).await;
    assert!(
        page.text.contains("Commuter &#60;weekday&#62;")
            && !page.text.contains("<weekday>")
            && page.text.contains("0 of 2"),
        "{}",
        page.text
    );
    assert!(page.text.contains("89.00 EUR"), "{}", page.text);

    // Bad terms are a page with a 4xx: no day, more places than the lot has.
    let no_day = app
        .submit(
            &format!("{lot_page}/pass-products"),
            &session,
            &[
                ("name", "X"),
                ("vehicle_car", "on"),
                ("price_cents", "100"),
                ("spots", "1"),
            ],
        )
        .await;
    assert_eq!(
        no_day.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        no_day.text
    );
    assert!(no_day.text.contains("at least one day"), "{}", no_day.text);
    let too_many = app
        .submit(
            &format!("{lot_page}/pass-products"),
            &session,
            &[
                ("name", "X"),
                ("day_sat", "on"),
                ("vehicle_car", "on"),
                ("price_cents", "100"),
                ("spots", "4"),
            ],
        )
        .await;
    assert_eq!(too_many.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Stop selling it: no longer listed to drivers, marked on the page, audited.
    let id = product["id"].as_str().unwrap();
    let retired = app
        .submit(
            &format!("{lot_page}/pass-products/{id}/retire"),
            &session,
            &[],
        )
        .await;
    assert_eq!(retired.status, StatusCode::SEE_OTHER, "{}", retired.text);
    let listed = app
        .call("GET", &format!("/v1/lots/{lot}/pass-products"), None, None)
        .await;
    assert_eq!(listed.body["items"], json!([]));
    let page = app.page("GET", &lot_page, &session, None).await;
    assert!(page.text.contains("no longer sold"), "{}", page.text);
    let log = app.state.services.admin().audit_log(10).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"pass_product.create") && actions.contains(&"pass_product.retire"),
        "{actions:?}"
    );
}
