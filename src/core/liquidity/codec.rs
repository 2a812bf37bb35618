//! The model's record in lightningd's datastore: a compact, versioned binary form.

use super::config::ChanDir;
use super::model::{Entry, Liquidity};
use crate::core::graph::Scid;

impl Liquidity {
    /// A compact, versioned binary form for lightningd's datastore (in-flight amounts are not
    /// saved: they belong to this process's attempts).
    /// Only what [`Liquidity::decode`] reads back is written: a channel direction other than
    /// 0 or 1, or a node id over 255 bytes (a real one has 66), would make the whole record
    /// unreadable, so such entries are left out.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * ENTRY_BYTES);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        let mut sorted: Vec<(&ChanDir, &Entry)> = self
            .entries
            .iter()
            .filter(|(cd, _)| cd.direction <= 1)
            .collect();
        out.extend_from_slice(&(sorted.len() as u32).to_be_bytes());
        sorted.sort_unstable_by_key(|x| *x.0);
        for (cd, e) in sorted {
            out.extend_from_slice(&cd.short_channel_id.0.to_be_bytes());
            out.push(cd.direction);
            for v in [e.min_msat, e.max_msat, e.updated, e.failed_at] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        let mut nodes = self.failed_nodes();
        nodes.retain(|(id, _)| id.len() <= 255);
        out.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
        for (id, t) in nodes {
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&t.to_be_bytes());
        }
        out
    }

    /// Reads what [`Liquidity::encode`] wrote; anything else is an error saying why.
    pub fn decode(bytes: &[u8]) -> Result<Liquidity, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a cln-rebalance liquidity record".into());
        }
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(format!(
                "liquidity record version {version}, this plugin reads {VERSION}"
            ));
        }
        let n = r.u32()? as usize;
        if n > bytes.len() / ENTRY_BYTES {
            return Err(format!("claims {n} entries in {} bytes", bytes.len()));
        }
        let mut l = Liquidity::default();
        l.entries.reserve(n);
        for _ in 0..n {
            let scid = Scid(r.u64()?);
            let direction = r.take(1)?[0];
            if direction > 1 {
                return Err(format!("direction {direction}"));
            }
            let min_msat = r.u64()?;
            let max_msat = r.u64()?;
            let updated = r.u64()?;
            let failed_at = r.u64()?;
            if min_msat > max_msat {
                return Err(format!("min {min_msat} above max {max_msat}"));
            }
            l.entries.insert(
                ChanDir::new(scid, direction),
                Entry {
                    min_msat,
                    max_msat,
                    updated,
                    failed_at,
                },
            );
        }
        let m = r.u32()? as usize;
        for _ in 0..m {
            let len = r.take(1)?[0] as usize;
            let id = std::str::from_utf8(r.take(len)?)
                .map_err(|_| "node id not text".to_string())?
                .to_string();
            let t = r.u64()?;
            l.nodes.insert(id, t);
        }
        if r.at != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - r.at));
        }
        Ok(l)
    }
}

pub(super) const MAGIC: &[u8; 4] = b"CRLQ";
pub(super) const VERSION: u8 = 1;
pub(super) const ENTRY_BYTES: usize = 8 + 1 + 8 + 8 + 8 + 8;

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub(super) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub(super) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
}
