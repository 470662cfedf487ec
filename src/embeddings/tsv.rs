//! Music4All-Onion style TSV embeddings: a header `id` then one column per dimension,
//! one row per track, in any order.

use std::path::Path;

use crate::io::{ImportError, LineReader, Vocab};

/// Reads a TSV matrix into catalog row order. Every catalog track must appear exactly
/// once; a track the catalog lacks is an error. With `catalog = None` the rows define the
/// catalog (sorted by id), and it is returned.
pub fn read_tsv_matrix(
    path: &Path,
    catalog: Option<&Vocab>,
) -> Result<(Vec<f32>, usize, Option<Vocab>), ImportError> {
    let mut lines = LineReader::open(path)?;
    let header = lines.header()?;
    let columns: Vec<&str> = header.split('\t').collect();
    if columns.first().map(|c| c.trim()) != Some("id") || columns.len() < 2 {
        return Err(ImportError::Header {
            path: path.into(),
            expected: "id\\t<one column per dimension>".into(),
            found: header.replace('\t', "\\t"),
        });
    }
    let dim = columns.len() - 1;
    let mut rows: Vec<(String, Vec<f32>, u64)> = Vec::new();
    while let Some((line_no, row)) = lines.next_line()? {
        if row.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(row).map_err(|_| ImportError::Line {
            path: path.into(),
            line: line_no,
            detail: "not valid UTF-8".into(),
        })?;
        let mut fields = text.split('\t');
        let id = fields.next().unwrap_or_default().trim().to_string();
        let mut values = Vec::with_capacity(dim);
        for (column, field) in fields.enumerate() {
            let v: f32 = field.trim().parse().map_err(|_| ImportError::Line {
                path: path.into(),
                line: line_no,
                detail: format!("column {}: `{field}` is not a number", column + 2),
            })?;
            if !v.is_finite() {
                return Err(ImportError::NonFinite {
                    path: path.into(),
                    row: line_no,
                    column: column + 2,
                    value: v,
                });
            }
            values.push(v);
        }
        if values.len() != dim {
            return Err(ImportError::Dimension {
                path: path.into(),
                row: line_no,
                expected: dim,
                found: values.len(),
            });
        }
        rows.push((id, values, line_no));
    }

    let (catalog, built) = match catalog {
        Some(c) => (c.clone(), None),
        None => {
            let mut ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
            ids.sort_unstable();
            if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                let line = rows
                    .iter()
                    .filter(|r| r.0 == w[0])
                    .nth(1)
                    .map_or(0, |r| r.2);
                return Err(ImportError::DuplicateTrack {
                    path: path.into(),
                    line,
                    id: w[0].into(),
                });
            }
            let v = Vocab::from_ids(ids).expect("sorted ids were checked for duplicates");
            (v.clone(), Some(v))
        }
    };
    let mut data = vec![0f32; catalog.len() * dim];
    let mut seen = vec![false; catalog.len()];
    for (id, values, line) in rows {
        let Some(i) = catalog.get(&id) else {
            return Err(ImportError::Line {
                path: path.into(),
                line,
                detail: format!("track `{id}` is not in the track id list"),
            });
        };
        if std::mem::replace(&mut seen[i as usize], true) {
            return Err(ImportError::DuplicateTrack {
                path: path.into(),
                line,
                id,
            });
        }
        data[i as usize * dim..(i as usize + 1) * dim].copy_from_slice(&values);
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(ImportError::Npy {
            path: path.into(),
            detail: format!(
                "{} of {} tracks have no row, e.g. `{}`",
                seen.iter().filter(|s| !**s).count(),
                catalog.len(),
                catalog.id(missing as u32)
            ),
        });
    }
    Ok((data, dim, built))
}
