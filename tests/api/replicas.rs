//! Two real `audiorec serve` processes on one Postgres behave as one service: a user
//! created on either is read on the other, and a listen posted to one is reflected in
//! the next recommendation from the other (the per-process caches validate against the
//! database).

use serde_json::{Value, json};

use crate::helpers::{Db, database_url, postgres_available, track_ids};
use crate::process::Server;

async fn call(method: &str, url: String, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let request = match (method, body) {
        ("POST", Some(b)) => client.post(url).json(&b),
        _ => client.get(url),
    };
    crate::helpers::decode(request.send().await.expect("request")).await
}

fn ids(recs: &Value) -> Vec<String> {
    recs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["track_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_behave_as_one_service() {
    if postgres_available().is_none() {
        return;
    }
    let url = database_url(Db::Postgres).await;
    // The first start imports the catalog; the second finds it there.
    let a = Server::start(&url, &[]).await;
    let b = Server::start(&url, &[]).await;
    let tracks = track_ids();

    for (writer, reader, user) in [(&a, &b, "carol"), (&b, &a, "dave")] {
        let (status, _) = call(
            "POST",
            format!("{}/v1/users", writer.base),
            Some(json!({"user_id": user})),
        )
        .await;
        assert_eq!(status, 201);
        let (status, read) = call("GET", format!("{}/v1/users/{user}", reader.base), None).await;
        assert_eq!((status, read["user_id"].as_str()), (200, Some(user)));
    }

    let listens: Vec<Value> = (0..4)
        .map(|i| json!({"track_id": tracks[i], "timestamp": i}))
        .collect();
    let append = |server: &Server, listens: Value| {
        call(
            "POST",
            format!("{}/v1/users/carol/listens", server.base),
            Some(json!({"listens": listens})),
        )
    };
    assert_eq!(append(&a, json!(listens)).await.0, 200);
    let recs_on_b = || {
        call(
            "GET",
            format!("{}/v1/users/carol/recommendations?k=20", b.base),
            None,
        )
    };
    let (status, first) = recs_on_b().await;
    assert_eq!(status, 200, "{first}");
    let first = ids(&first);
    // B has now remembered carol's user vector. Listening (on A) to B's top pick must
    // change B's next answer: the pick is history now, never recommended.
    let top = first[0].clone();
    assert_eq!(
        append(&a, json!([{"track_id": top, "timestamp": 100}]))
            .await
            .0,
        200
    );
    let (status, second) = recs_on_b().await;
    assert_eq!(status, 200);
    let second = ids(&second);
    assert!(
        !second.contains(&top),
        "B served a stale history: {second:?}"
    );
    assert_ne!(first, second);
    let (_, on_a) = call(
        "GET",
        format!("{}/v1/users/carol/recommendations?k=20", a.base),
        None,
    )
    .await;
    assert_eq!(ids(&on_a), second, "both replicas give the same answer");
    let (_, carol) = call("GET", format!("{}/v1/users/carol", b.base), None).await;
    assert_eq!(carol["tracks"], 5);
}
