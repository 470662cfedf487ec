use std::time::Duration;

use serde_json::json;

use crate::helpers::{Db, on_both_databases, spawn_app_with, track_ids};

on_both_databases!(
    large_evaluations_run_in_the_background,
    |db: Db| async move {
        let app = spawn_app_with(db, |s| s.sync_eval_users = 1).await;
        let tracks = track_ids();
        let users: Vec<_> = (0..3)
            .map(|i| json!({"history": [tracks[i]], "held_out": [tracks[i + 10]]}))
            .collect();
        let response = app
            .client
            .post(format!("{}/v1/evaluations", app.address))
            .json(&json!({"backend": "mfcc", "k": 20, "users": users}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let accepted: serde_json::Value = response.json().await.unwrap();
        assert_eq!(accepted["status"], "pending");
        assert_eq!(
            location,
            format!("/v1/evaluations/{}", accepted["id"].as_str().unwrap())
        );

        let mut run = json!(null);
        for _ in 0..100 {
            run = app.get(&location).await.1;
            if run["status"] != "pending" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["users"], 3);
        let (_, with_users) = app.get(&format!("{location}?include_users=true")).await;
        assert_eq!(with_users["per_user"].as_array().unwrap().len(), 3);
    }
);
