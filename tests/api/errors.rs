use serde_json::json;

use crate::helpers::{Db, assert_problem, on_both_databases, spawn_app, spawn_app_with, track_ids};

on_both_databases!(
    bad_requests_get_problem_details_and_write_nothing,
    |db: Db| async move {
        let app = spawn_app(db).await;
        let tracks = track_ids();
        assert_eq!(
            app.post("/v1/users", &json!({"user_id": "bob"})).await.0,
            201
        );

        assert_problem(&app.get("/v1/users/nobody").await, 404, "unknown-user");
        assert_problem(
            &app.get("/v1/users/nobody/recommendations").await,
            404,
            "unknown-user",
        );
        assert_problem(
            &app.get("/v1/tracks/no-such-track").await,
            404,
            "unknown-track",
        );
        assert_problem(
            &app.get(&format!("/v1/tracks/{}/similar?backend=nope", tracks[0]))
                .await,
            404,
            "unknown-backend",
        );
        let history = json!({"history": [tracks[0]], "model": "word2vec"});
        assert_problem(
            &app.post("/v1/recommendations", &history).await,
            404,
            "unknown-model",
        );
        assert_problem(
            &app.post("/v1/recommendations", &json!({"history": ["nope"]}))
                .await,
            404,
            "unknown-track",
        );
        assert_problem(&app.get("/v1/evaluations/123").await, 404, "unknown-run");

        assert_problem(
            &app.post_raw("/v1/recommendations", "{\"history\": [").await,
            400,
            "malformed-body",
        );
        assert_problem(
            &app.post_raw("/v1/users", "[1, 2]").await,
            422,
            "invalid-request",
        );
        assert_problem(
            &app.post("/v1/recommendations", &json!({"history": []}))
                .await,
            422,
            "invalid-request",
        );
        for k in ["0", "1001", "-3", "ten"] {
            assert_problem(
                &app.get(&format!("/v1/users/bob/recommendations?k={k}"))
                    .await,
                422,
                "invalid-request",
            );
        }
        // Bob exists but has no listens: a valid request the user's state cannot serve.
        assert_problem(
            &app.get("/v1/users/bob/recommendations").await,
            409,
            "no-listens",
        );
        assert_problem(
            &app.post("/v1/users", &json!({"user_id": "bob"})).await,
            409,
            "conflict",
        );
        assert_problem(
            &app.post("/v1/users", &json!({"user_id": ""})).await,
            422,
            "invalid-request",
        );

        // One unknown track rejects the whole batch: nothing is written.
        let batch = json!({"listens": [
            {"track_id": tracks[0], "timestamp": 1},
            {"track_id": "nope", "timestamp": 2},
        ]});
        assert_problem(
            &app.post("/v1/users/bob/listens", &batch).await,
            404,
            "unknown-track",
        );
        assert_problem(
            &app.post(
                "/v1/users/nobody/listens",
                &json!({"listens": [{"track_id": tracks[0], "timestamp": 1}]}),
            )
            .await,
            404,
            "unknown-user",
        );
        assert_problem(
            &app.post("/v1/users/bob/listens", &json!({"listens": []}))
                .await,
            422,
            "invalid-request",
        );
        assert_eq!(app.get("/v1/users/bob").await.1["plays"], 0);

        // An evaluation naming an unknown user stores no run.
        let eval = json!({"users": [{"user_id": "nobody", "held_out": [tracks[0]]}]});
        assert_problem(
            &app.post("/v1/evaluations", &eval).await,
            404,
            "unknown-user",
        );
        let eval =
            json!({"users": [{"user_id": "bob", "history": [tracks[1]], "held_out": [tracks[0]]}]});
        assert_problem(
            &app.post("/v1/evaluations", &eval).await,
            422,
            "invalid-request",
        );
        let eval = json!({"users": [{"history": [tracks[1]], "held_out": []}]});
        assert_problem(
            &app.post("/v1/evaluations", &eval).await,
            422,
            "invalid-request",
        );
        assert_eq!(app.get("/v1/evaluations").await.1, json!([]));

        // Oversized bodies are refused before parsing.
        let huge = json!({"history": vec![tracks[0].clone(); 100_000]});
        assert_problem(
            &app.post("/v1/recommendations", &huge).await,
            413,
            "payload-too-large",
        );
    }
);

on_both_databases!(a_database_outage_is_503_not_a_panic, |db: Db| async move {
    let app = spawn_app_with(db, |_| {}).await;
    app.store.close().await;
    assert_problem(&app.get("/v1/users/anyone").await, 503, "unavailable");
    // Readiness answers 503 with its own report rather than a problem.
    let response = app
        .client
        .get(format!("{}/ready", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let ready: serde_json::Value = response.json().await.unwrap();
    assert_eq!(ready["database_ok"], false);
    assert_eq!(app.get("/health").await.0, 200);
});
