//! Decoding `listchannels` JSON bytes straight into a graph builder. The decode is lean (node
//! ids stay hex strings until interned, unknown fields are skipped) because a mainnet graph has
//! ~100k channel directions and cln-rpc's typed model spends most of its time validating keys.

use super::build::GraphBuilder;
use super::ids::{Policy, Scid};
use super::layout::Graph;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Why `listchannels` bytes could not become a graph.
#[derive(Debug)]
pub struct GraphError(pub String);

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read listchannels: {}", self.0)
    }
}

impl std::error::Error for GraphError {}

/// One `listchannels` entry, borrowed from the input where it has no escapes.
#[derive(Deserialize)]
struct RawChannel<'a> {
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(borrow)]
    destination: Cow<'a, str>,
    #[serde(borrow)]
    short_channel_id: Cow<'a, str>,
    direction: Option<u8>,
    amount_msat: u64,
    active: bool,
    base_fee_millisatoshi: u32,
    fee_per_millionth: u32,
    delay: u32,
    htlc_minimum_msat: u64,
    htlc_maximum_msat: Option<u64>,
}

/// Streams `{"channels": [...]}` straight into a builder: no `Vec` of ~100k parsed entries is
/// ever held (it cost ~12 MiB at peak and an extra pass).
struct ListchannelsSeed<'b>(&'b mut GraphBuilder);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TopField {
    Channels,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for ListchannelsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListchannelsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a listchannels result {\"channels\": [...]}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<TopField>()? {
            match key {
                TopField::Channels if !seen => {
                    map.next_value_seed(ChannelsSeed(&mut *self.0))?;
                    seen = true;
                }
                TopField::Channels => return Err(de::Error::duplicate_field("channels")),
                TopField::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        if seen {
            Ok(())
        } else {
            Err(de::Error::missing_field("channels"))
        }
    }
}

struct ChannelsSeed<'b>(&'b mut GraphBuilder);

impl<'de> DeserializeSeed<'de> for ChannelsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ChannelsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of listchannels entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(c) = seq.next_element::<RawChannel<'de>>()? {
            self.0.add_raw(&c).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

impl Graph {
    /// Builds the graph from the raw bytes of a `listchannels` result (`{"channels": [...]}`).
    pub fn from_listchannels_json(bytes: &[u8]) -> Result<Graph, GraphError> {
        Ok(GraphBuilder::from_listchannels_json(bytes)?.build())
    }
}

impl GraphBuilder {
    /// Decodes `listchannels` bytes into a builder (the parse half of
    /// [`Graph::from_listchannels_json`]; [`GraphBuilder::build`] is the layout half).
    pub fn from_listchannels_json(bytes: &[u8]) -> Result<GraphBuilder, GraphError> {
        // A mainnet entry is ~450 bytes, ~365 with only the fields we read (filtered):
        // reserving a little more avoids regrowing ~100k edges (which briefly holds both).
        let mut builder = GraphBuilder::with_capacity(bytes.len() / 340);
        let mut de = serde_json::Deserializer::from_slice(bytes);
        ListchannelsSeed(&mut builder)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| GraphError(e.to_string()))?;
        Ok(builder)
    }

    fn add_raw(&mut self, c: &RawChannel) -> Result<(), String> {
        let scid: Scid = c.short_channel_id.parse()?;
        let direction = match c.direction {
            Some(d) => d,
            None => u8::from(c.source > c.destination),
        };
        self.add(
            &c.source,
            &c.destination,
            scid,
            direction,
            c.active,
            c.amount_msat,
            Policy {
                base_fee_millisatoshi: c.base_fee_millisatoshi,
                fee_per_millionth: c.fee_per_millionth,
                delay: c.delay,
                htlc_minimum_msat: c.htlc_minimum_msat,
                htlc_maximum_msat: c.htlc_maximum_msat.unwrap_or(c.amount_msat),
            },
        );
        Ok(())
    }
}
