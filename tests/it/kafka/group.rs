//! Two consumers in one group on a six-partition topic split the partitions, and together
//! write every event exactly once: each into its own lake (a lake has one writer), both into
//! the shared ClickHouse.

use super::*;
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_in_one_group_split_the_partitions_and_keep_exactly_once() {
    let Some(brokers) = service("PARKFLOW_TEST_KAFKA_BROKERS") else {
        return;
    };
    let Some(clickhouse_url) = service("PARKFLOW_TEST_CLICKHOUSE_URL") else {
        return;
    };
    let (kafka, clickhouse) = fresh_path(
        KafkaConfig {
            brokers,
            partitions: 6,
            batch_size: 200,
            ..KafkaConfig::default()
        },
        clickhouse_url,
    )
    .await;

    // Twelve lots (the key is the lot, so their events spread over the partitions), thirty
    // entries each.
    let dir = tempfile::tempdir().unwrap();
    let (state, _clock) = sqlite_api(dir.path(), "2026-06-01T08:00:00Z".parse().unwrap()).await;
    for l in 0..12 {
        let lot = state
            .services
            .lots()
            .create_lot(test_lot(&format!("Group {l}"), 40))
            .await
            .unwrap()
            .id;
        for _ in 0..30 {
            state
                .services
                .gates()
                .check_in(
                    lot,
                    CheckInRequest {
                        vehicle_type: VehicleType::Car,
                        method: EntryMethod::Qr,
                        plate: None,
                        user_id: None,
                    },
                )
                .await
                .unwrap();
        }
    }
    let recorded = state.services.store().outbox_len().await.unwrap() as usize;

    // Both members join before anything is published, so each holds a share.
    let (lake_a, lake_b) = (
        Lake::new(dir.path().join("lake-a")),
        Lake::new(dir.path().join("lake-b")),
    );
    let member = |lake: &Lake| {
        WarehouseConsumer::new(
            &kafka,
            lake.clone(),
            Some(clickhouse.clone()),
            IngestMetrics::default(),
        )
        .unwrap()
    };
    let (mut a, mut b) = (member(&lake_a), member(&lake_b));
    let deadline = tokio::time::Instant::now() + Wait::from_secs(90);
    loop {
        let (ra, rb) = tokio::join!(
            a.step(Wait::from_millis(500)),
            b.step(Wait::from_millis(500))
        );
        ra.unwrap();
        rb.unwrap();
        let (pa, pb) = (a.assigned_partitions(), b.assigned_partitions());
        if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 6 {
            let mut all: Vec<i32> = pa.iter().chain(&pb).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..6).collect::<Vec<_>>(), "{pa:?} and {pb:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group never split: {pa:?} and {pb:?}"
        );
    }
    let (held_a, held_b) = (a.assigned_partitions(), b.assigned_partitions());

    // Publish everything, and let both members consume until the lakes hold it all.
    Relay::new(
        state.services.store().outbox(),
        &kafka,
        IngestMetrics::default(),
    )
    .unwrap()
    .drain()
    .await
    .unwrap();
    loop {
        let (ra, rb) = tokio::join!(a.step(Wait::from_secs(1)), b.step(Wait::from_secs(1)));
        ra.unwrap();
        rb.unwrap();
        let (na, _) = lake_event_ids(&lake_a);
        let (nb, _) = lake_event_ids(&lake_b);
        if na + nb >= recorded {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {recorded} events reached the lakes",
            na + nb
        );
    }

    // Each wrote only its own partitions' events, both wrote some, and together exactly all.
    let (na, ids_a) = lake_event_ids(&lake_a);
    let (nb, ids_b) = lake_event_ids(&lake_b);
    assert!(na > 0 && nb > 0, "both members wrote: {na} and {nb}");
    assert_eq!(
        (na, nb),
        (ids_a.len(), ids_b.len()),
        "no event twice in one lake"
    );
    assert!(ids_a.is_disjoint(&ids_b), "no event in both lakes");
    let all: HashSet<_> = ids_a.union(&ids_b).collect();
    assert_eq!(all.len(), recorded);
    assert_eq!(
        clickhouse.event_counts().await.unwrap(),
        (recorded as u64, recorded as u64),
        "ClickHouse (FINAL) holds each event once"
    );
    // The split did not move while consuming.
    assert_eq!(
        (a.assigned_partitions(), b.assigned_partitions()),
        (held_a, held_b)
    );
}
