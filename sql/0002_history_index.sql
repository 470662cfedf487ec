-- A user's history is read on every recommendation: (user, first listen, track) in one
-- index answers it from the index alone, in order, without a table lookup per track.
CREATE INDEX plays_history ON plays (user_id, first_ts, track_idx);
DROP INDEX plays_by_user_time;
