use audiorec::config::Secret;
use serde_json::json;

use crate::helpers::{Db, assert_problem, decode, on_both_databases, spawn_app, spawn_app_with};

on_both_databases!(writes_need_the_key_when_one_is_set, |db: Db| async move {
    let app = spawn_app_with(db, |s| s.api_key = Some(Secret("s3cret".into()))).await;
    let url = format!("{}/v1/users", app.address);
    let body = json!({"user_id": "carol"});

    assert_problem(
        &decode(app.client.post(&url).json(&body).send().await.unwrap()).await,
        401,
        "unauthorized",
    );
    let wrong = app
        .client
        .post(&url)
        .bearer_auth("guess")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(&decode(wrong).await, 401, "unauthorized");
    let right = app
        .client
        .post(&url)
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 201);
    // Reads stay open.
    assert_eq!(app.get("/v1/users/carol").await.0, 200);
});

on_both_databases!(without_a_key_writes_are_open, |db: Db| async move {
    let app = spawn_app(db).await;
    assert_eq!(
        app.post("/v1/users", &json!({"user_id": "dave"})).await.0,
        201
    );
});
