use serde_json::json;

use crate::helpers::{Db, assert_problem, on_both_databases, spawn_app, track_ids};

on_both_databases!(
    user_listens_recommendations_and_an_evaluation_run,
    |db: Db| async move {
        let app = spawn_app(db).await;
        let tracks = track_ids();

        let (status, user) = app.post("/v1/users", &json!({"user_id": "alice"})).await;
        assert_eq!(status, 201, "{user}");
        assert_eq!(user["tracks"], 0);

        // Three listens, then the same batch again: counted once.
        let batch = json!({"listens": [
            {"track_id": tracks[0], "timestamp": 1_700_000_000},
            {"track_id": tracks[1], "timestamp": 1_700_000_100},
            {"track_id": tracks[0], "timestamp": 1_700_000_200},
        ]});
        assert_eq!(
            app.post("/v1/users/alice/listens", &batch).await,
            (200, json!({"accepted": 3, "duplicates": 0}))
        );
        assert_eq!(
            app.post("/v1/users/alice/listens", &batch).await,
            (200, json!({"accepted": 0, "duplicates": 3}))
        );
        let (_, user) = app.get("/v1/users/alice").await;
        assert_eq!(
            (user["tracks"].clone(), user["plays"].clone()),
            (json!(2), json!(3))
        );

        // Aggregated listens, paginated: first listen and play count per track.
        let (status, page) = app.get("/v1/users/alice/listens?limit=1").await;
        assert_eq!(status, 200);
        assert_eq!(page["items"][0]["track_id"], tracks[0]);
        assert_eq!(page["items"][0]["first_listen"], 1_700_000_000);
        assert_eq!(page["items"][0]["plays"], 2);
        assert_eq!(page["next_offset"], 1);
        let (_, page) = app.get("/v1/users/alice/listens?limit=1&offset=1").await;
        assert_eq!(page["items"][0]["track_id"], tracks[1]);
        assert_eq!(page["next_offset"], json!(null));

        // Recommendations: k items, best first, never a listened track.
        let (status, recs) = app
            .get("/v1/users/alice/recommendations?model=knn&backend=musicnn&k=5")
            .await;
        assert_eq!(status, 200, "{recs}");
        let items = recs["items"].as_array().unwrap();
        assert_eq!(items.len(), 5);
        let ids: Vec<&str> = items
            .iter()
            .map(|i| i["track_id"].as_str().unwrap())
            .collect();
        assert!(!ids.contains(&tracks[0].as_str()) && !ids.contains(&tracks[1].as_str()));
        let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

        // A new listen of the top recommendation is reflected in the next answer.
        let top = ids[0].to_string();
        let (status, _) = app
            .post(
                "/v1/users/alice/listens",
                &json!({"listens": [{"track_id": top, "timestamp": 1_700_000_300}]}),
            )
            .await;
        assert_eq!(status, 200);
        let (_, again) = app
            .get("/v1/users/alice/recommendations?model=knn&backend=musicnn&k=5")
            .await;
        assert!(
            again["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["track_id"] != top.as_str())
        );

        // The trained Shallow Net serves the same user through the same endpoint.
        let (status, shallow) = app
            .get("/v1/users/alice/recommendations?model=shallow&backend=musicnn&k=5")
            .await;
        assert_eq!(status, 200, "{shallow}");
        assert_eq!(shallow["model"], "shallow");
        let listened = [tracks[0].as_str(), tracks[1].as_str(), top.as_str()];
        let shallow_items = shallow["items"].as_array().unwrap();
        assert_eq!(shallow_items.len(), 5);
        assert!(
            shallow_items
                .iter()
                .all(|i| !listened.contains(&i["track_id"].as_str().unwrap()))
        );
        let (_, models) = app.get("/v1/models").await;
        assert!(
            models
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["model"] == "shallow" && m["backend"] == "musicnn")
        );
        assert_problem(
            &app.get("/v1/users/alice/recommendations?model=shallow&backend=mert")
                .await,
            404,
            "unknown-model",
        );

        // The posted-history path gives the same list as the stored user with that history.
        let (status, session) = app
            .post(
                "/v1/recommendations",
                &json!({"history": [tracks[0], tracks[1], top], "backend": "musicnn", "k": 5}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(session["items"], again["items"]);

        // Evaluation: alice's held-out track is her current top recommendation (a hit at
        // rank 1); the session's held-out track is in its own history, so it is excluded and
        // can never be hit. Hand-computed: HitRate mean 0.5, half-width t(0.975, 1)·s/√2 with
        // s = √0.5, i.e. 12.7062·0.5 = 6.3531.
        let first = again["items"][0]["track_id"].as_str().unwrap().to_string();
        let (status, run) = app
            .post(
                "/v1/evaluations",
                &json!({"model": "knn", "backend": "musicnn", "k": 5, "users": [
                    {"user_id": "alice", "held_out": [first]},
                    {"history": [tracks[2]], "held_out": [tracks[2]]},
                ]}),
            )
            .await;
        assert_eq!(status, 201, "{run}");
        assert_eq!(run["status"], "succeeded");
        let hit_rate = &run["metrics"]["hit_rate"];
        assert!((hit_rate["mean"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!(
            (hit_rate["half_width"].as_f64().unwrap() - 6.353_102).abs() < 1e-5,
            "{hit_rate}"
        );
        assert!((run["metrics"]["mrr"]["mean"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!((run["metrics"]["ndcg"]["mean"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!((run["metrics"]["precision"]["mean"].as_f64().unwrap() - 0.1).abs() < 1e-12);

        let id = run["id"].as_str().unwrap();
        let (status, stored) = app
            .get(&format!("/v1/evaluations/{id}?include_users=true"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(stored["metrics"], run["metrics"]);
        let per_user = stored["per_user"].as_array().unwrap();
        assert_eq!(per_user[0]["user"], "alice");
        assert_eq!(per_user[0]["metrics"]["hit_rate"], 1.0);
        assert_eq!(per_user[1]["user"], "session-1");
        assert_eq!(per_user[1]["metrics"]["hit_rate"], 0.0);
        let (_, runs) = app.get("/v1/evaluations").await;
        assert_eq!(runs.as_array().unwrap().len(), 1);

        // Similar tracks exclude the track itself.
        let (status, similar) = app
            .get(&format!(
                "/v1/tracks/{}/similar?backend=mert&k=3",
                tracks[0]
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(similar["items"].as_array().unwrap().len(), 3);
        assert!(
            similar["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["track_id"] != tracks[0].as_str())
        );
    }
);
