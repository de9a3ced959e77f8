//! Toxics: the faults a proxy applies to a byte stream, one file per toxic.
//!
//! A toxic is a small, seeded, *pure* state machine (habit 9): it is told that bytes arrived at
//! an instant, or that the source closed, or that its own deadline passed, and it answers with
//! [`Emit`]s — "write these bytes at that instant", "close at that instant", "reset at that
//! instant". It never sleeps, reads or writes a socket: the proxy plumbing (`crate::proxy`)
//! owns the sockets and the clock and carries out what the chain of toxics decided. That is
//! why every toxic can be unit-tested with made-up instants, and why a run can be replayed:
//! all randomness (toxicity, jitter, slice sizes) comes from an RNG seeded per proxy,
//! connection and toxic name (see [`toxic_seed`]).
//!
//! A [`Chain`] runs the toxics of one direction of one connection in order; the output of one
//! toxic is the input of the next. The JSON shape of a toxic ([`ToxicSpec`]) is Toxiproxy's:
//! `{name, type, stream, toxicity, attributes}`.

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::Error;

pub mod bandwidth;
pub mod latency;
pub mod limit_data;
pub mod noop;
pub mod reset_peer;
pub mod slicer;
pub mod slow_close;
pub mod timeout;

pub use bandwidth::Bandwidth;
pub use latency::Latency;
pub use limit_data::LimitData;
pub use noop::Noop;
pub use reset_peer::ResetPeer;
pub use slicer::Slicer;
pub use slow_close::SlowClose;
pub use timeout::Timeout;

/// What the proxy must do with the destination socket of a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes.
    Data(Vec<u8>),
    /// Close the destination gracefully (FIN) and stop this direction.
    Close,
    /// Close the whole connection abruptly (SO_LINGER 0, so the peer sees a TCP RST).
    Reset,
}

/// An [`Action`] and the earliest instant at which the proxy may carry it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    /// Not before this instant. The proxy keeps the order of emits, so a later emit with an
    /// earlier instant waits for the ones before it.
    pub at: Instant,
    /// What to do.
    pub action: Action,
}

impl Emit {
    /// Bytes to write at `at`.
    pub fn data(at: Instant, data: Vec<u8>) -> Self {
        Emit {
            at,
            action: Action::Data(data),
        }
    }
    /// A graceful close at `at`.
    pub fn close(at: Instant) -> Self {
        Emit {
            at,
            action: Action::Close,
        }
    }
    /// A reset at `at`.
    pub fn reset(at: Instant) -> Self {
        Emit {
            at,
            action: Action::Reset,
        }
    }
}

/// One toxic's state on one direction of one connection.
///
/// Implementations are pure: given the same inputs (and the same seed at construction) they
/// produce the same emits. Default methods pass data and closes through unchanged.
pub trait Toxic: Send + fmt::Debug {
    /// `data` arrived at `at` (read from the socket, or emitted by the previous toxic).
    fn on_data(&mut self, at: Instant, data: Vec<u8>, out: &mut Vec<Emit>) {
        out.push(Emit::data(at, data));
    }
    /// The source closed at `at`.
    fn on_close(&mut self, at: Instant, out: &mut Vec<Emit>) {
        out.push(Emit::close(at));
    }
    /// The next instant at which this toxic wants [`Toxic::on_deadline`] called, if any.
    fn deadline(&self) -> Option<Instant> {
        None
    }
    /// Called once [`Toxic::deadline`] has passed.
    fn on_deadline(&mut self, _now: Instant, _out: &mut Vec<Emit>) {}
    /// The toxic is being removed from a live connection (Toxiproxy's `Cleanup`).
    fn on_remove(&mut self, _now: Instant, _out: &mut Vec<Emit>) {}
}

/// Which way the bytes flow. Toxiproxy's names: `upstream` is client → server,
/// `downstream` is server → client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client to upstream server.
    Upstream,
    /// Upstream server to client.
    Downstream,
}

impl Stream {
    /// The wire name (`upstream` / `downstream`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
    /// Parses `upstream` / `downstream` (Toxiproxy also accepts the short forms `up` / `down`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" | "up" => Ok(Stream::Upstream),
            "downstream" | "down" => Ok(Stream::Downstream),
            _ => Err(Error::InvalidStream),
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A toxic type with its attributes, as Toxiproxy names them. Durations are milliseconds unless
/// a field says otherwise. Serialized as `{"type": ..., "attributes": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "KindWire", into = "KindWire")]
pub enum ToxicKind {
    /// Delay each chunk by `latency` ± `jitter` ms.
    Latency(latency::Config),
    /// Limit the rate to `rate` KB/s.
    Bandwidth(bandwidth::Config),
    /// Delay the close by `delay` ms.
    SlowClose(slow_close::Config),
    /// Drop all data and close after `timeout` ms (0 = never close: hang).
    Timeout(timeout::Config),
    /// On data, wait `timeout` ms then reset the connection (TCP RST).
    ResetPeer(reset_peer::Config),
    /// Slice data into `average_size` ± `size_variation` byte chunks, `delay` µs apart.
    Slicer(slicer::Config),
    /// Pass `bytes` bytes, then close.
    LimitData(limit_data::Config),
}

#[derive(Serialize, Deserialize)]
struct KindWire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attributes: serde_json::Value,
}

impl TryFrom<KindWire> for ToxicKind {
    type Error = Error;
    fn try_from(w: KindWire) -> Result<Self, Error> {
        ToxicKind::from_parts(&w.kind, &w.attributes)
    }
}

impl From<ToxicKind> for KindWire {
    fn from(k: ToxicKind) -> Self {
        KindWire {
            kind: k.type_name().to_string(),
            attributes: k.attributes(),
        }
    }
}

/// Every toxic type this proxy knows, by wire name.
pub const TOXIC_TYPES: [&str; 7] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
];

impl ToxicKind {
    /// Builds a kind from Toxiproxy's `type` and `attributes`. Missing attributes default to 0,
    /// as in Toxiproxy.
    pub fn from_parts(kind: &str, attributes: &serde_json::Value) -> Result<Self, Error> {
        let attrs = if attributes.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            attributes.clone()
        };
        fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, Error> {
            serde_json::from_value(v).map_err(|e| Error::BadRequest(e.to_string()))
        }
        let kind = match kind {
            "latency" => ToxicKind::Latency(parse(attrs)?),
            "bandwidth" => ToxicKind::Bandwidth(parse(attrs)?),
            "slow_close" => ToxicKind::SlowClose(parse(attrs)?),
            "timeout" => ToxicKind::Timeout(parse(attrs)?),
            "reset_peer" => ToxicKind::ResetPeer(parse(attrs)?),
            "slicer" => ToxicKind::Slicer(parse(attrs)?),
            "limit_data" => ToxicKind::LimitData(parse(attrs)?),
            other => return Err(Error::InvalidToxicType(other.to_string())),
        };
        kind.validate()?;
        Ok(kind)
    }

    /// The wire name of the type (`latency`, `reset_peer`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency(_) => "latency",
            ToxicKind::Bandwidth(_) => "bandwidth",
            ToxicKind::SlowClose(_) => "slow_close",
            ToxicKind::Timeout(_) => "timeout",
            ToxicKind::ResetPeer(_) => "reset_peer",
            ToxicKind::Slicer(_) => "slicer",
            ToxicKind::LimitData(_) => "limit_data",
        }
    }

    /// The attributes as a JSON object.
    pub fn attributes(&self) -> serde_json::Value {
        let v = match self {
            ToxicKind::Latency(c) => serde_json::to_value(c),
            ToxicKind::Bandwidth(c) => serde_json::to_value(c),
            ToxicKind::SlowClose(c) => serde_json::to_value(c),
            ToxicKind::Timeout(c) => serde_json::to_value(c),
            ToxicKind::ResetPeer(c) => serde_json::to_value(c),
            ToxicKind::Slicer(c) => serde_json::to_value(c),
            ToxicKind::LimitData(c) => serde_json::to_value(c),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Returns the kind with `patch`'s keys overriding the current attributes (Toxiproxy's
    /// update semantics: omitted attributes keep their value).
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Self, Error> {
        let mut attrs = self.attributes();
        if let (Some(base), Some(patch)) = (attrs.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                base.insert(k.clone(), v.clone());
            }
        }
        ToxicKind::from_parts(self.type_name(), &attrs)
    }

    fn validate(&self) -> Result<(), Error> {
        match self {
            ToxicKind::Slicer(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// A fresh state for one connection, seeded by `rng`, started at `now`.
    pub fn build(&self, now: Instant, rng: SmallRng) -> Box<dyn Toxic> {
        match self {
            ToxicKind::Latency(c) => Box::new(Latency::new(c.clone(), rng)),
            ToxicKind::Bandwidth(c) => Box::new(Bandwidth::new(c.clone())),
            ToxicKind::SlowClose(c) => Box::new(SlowClose::new(c.clone())),
            ToxicKind::Timeout(c) => Box::new(Timeout::new(c.clone(), now)),
            ToxicKind::ResetPeer(c) => Box::new(ResetPeer::new(c.clone())),
            ToxicKind::Slicer(c) => Box::new(Slicer::new(c.clone(), rng)),
            ToxicKind::LimitData(c) => Box::new(LimitData::new(c.clone())),
        }
    }
}

/// A named toxic on a proxy: Toxiproxy's `{name, type, stream, toxicity, attributes}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ToxicWire", into = "ToxicWire")]
pub struct ToxicSpec {
    /// Unique per proxy. Defaults to `<type>_<stream>`.
    pub name: String,
    /// Which direction it applies to.
    pub stream: Stream,
    /// Probability in 0..=1 that the toxic applies to a given connection.
    pub toxicity: f32,
    /// The type and its attributes.
    pub kind: ToxicKind,
}

impl ToxicSpec {
    /// A toxic applied to every connection (toxicity 1), named `<type>_<stream>`.
    pub fn new(kind: ToxicKind, stream: Stream) -> Self {
        ToxicSpec {
            name: format!("{}_{}", kind.type_name(), stream),
            stream,
            toxicity: 1.0,
            kind,
        }
    }
    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets the toxicity (clamped to 0..=1).
    pub fn with_toxicity(mut self, toxicity: f32) -> Self {
        self.toxicity = toxicity.clamp(0.0, 1.0);
        self
    }
}

/// The JSON form of a toxic, before its attributes are checked against its type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToxicWire {
    /// Optional on create.
    #[serde(default)]
    pub name: String,
    /// Toxic type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` or `downstream`; Toxiproxy defaults to `downstream`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Defaults to 1.
    #[serde(default = "default_toxicity")]
    pub toxicity: f32,
    /// Type-specific attributes.
    #[serde(default)]
    pub attributes: serde_json::Value,
}

fn default_stream() -> String {
    "downstream".to_string()
}
fn default_toxicity() -> f32 {
    1.0
}

impl TryFrom<ToxicWire> for ToxicSpec {
    type Error = Error;
    fn try_from(w: ToxicWire) -> Result<Self, Error> {
        let stream = Stream::parse(&w.stream)?;
        let kind = ToxicKind::from_parts(&w.kind, &w.attributes)?;
        if !(0.0..=1.0).contains(&w.toxicity) {
            return Err(Error::BadRequest(format!(
                "toxicity must be within 0..1, got {}",
                w.toxicity
            )));
        }
        let name = if w.name.is_empty() {
            format!("{}_{}", kind.type_name(), stream)
        } else {
            w.name
        };
        Ok(ToxicSpec {
            name,
            stream,
            toxicity: w.toxicity,
            kind,
        })
    }
}

impl From<ToxicSpec> for ToxicWire {
    fn from(s: ToxicSpec) -> Self {
        ToxicWire {
            name: s.name,
            kind: s.kind.type_name().to_string(),
            stream: s.stream.as_str().to_string(),
            toxicity: s.toxicity,
            attributes: s.kind.attributes(),
        }
    }
}

/// Derives the seed of one toxic on one connection from the proxy's seed, so that connection
/// `n` of a replayed run draws the same toxicity, jitter and slice sizes. FNV-1a over the
/// name, mixed with splitmix64: stable across Rust versions, unlike `DefaultHasher`.
pub fn toxic_seed(proxy_seed: u64, connection: u64, toxic: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in toxic.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix64(proxy_seed ^ splitmix64(connection ^ splitmix64(h)))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Instantiates `spec` for one connection: with probability `toxicity` (drawn from the seeded
/// RNG) the real toxic, otherwise a [`Noop`].
pub fn instantiate(spec: &ToxicSpec, seed: u64, now: Instant) -> Box<dyn Toxic> {
    let mut rng = SmallRng::seed_from_u64(seed);
    if rng.gen::<f32>() < spec.toxicity {
        spec.kind.build(now, rng)
    } else {
        Box::new(Noop)
    }
}

/// The toxics of one direction of one connection, in the order they were added.
#[derive(Debug)]
pub struct Chain {
    proxy_seed: u64,
    connection: u64,
    links: Vec<(ToxicSpec, Box<dyn Toxic>)>,
}

impl Chain {
    /// An empty chain for connection number `connection` of a proxy seeded with `proxy_seed`.
    pub fn new(proxy_seed: u64, connection: u64) -> Self {
        Chain {
            proxy_seed,
            connection,
            links: Vec::new(),
        }
    }

    /// Number of toxics (including those whose toxicity roll made them no-ops).
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// True when no toxic is attached.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Brings the chain in line with `specs` (live reconfiguration): unchanged toxics keep
    /// their state, changed ones restart, new ones are appended, removed ones get
    /// [`Toxic::on_remove`] — whose emits (e.g. a timeout's close) are returned.
    pub fn sync(&mut self, specs: &[ToxicSpec], now: Instant) -> Vec<Emit> {
        let mut out = Vec::new();
        let mut old = std::mem::take(&mut self.links);
        for spec in specs {
            let kept = old
                .iter()
                .position(|(s, _)| s == spec)
                .map(|i| old.remove(i));
            let link = match kept {
                Some(link) => link,
                None => {
                    let seed = toxic_seed(self.proxy_seed, self.connection, &spec.name);
                    (spec.clone(), instantiate(spec, seed, now))
                }
            };
            self.links.push(link);
        }
        for (spec, mut toxic) in old {
            // A toxic whose attributes changed is replaced, not removed: Toxiproxy does not
            // run its cleanup then.
            if !specs.iter().any(|s| s.name == spec.name) {
                toxic.on_remove(now, &mut out);
            }
        }
        out
    }

    /// Feeds bytes read at `at` through every toxic.
    pub fn on_data(&mut self, at: Instant, data: Vec<u8>) -> Vec<Emit> {
        self.push_through(0, vec![Emit::data(at, data)])
    }

    /// Feeds the source's close through every toxic.
    pub fn on_close(&mut self, at: Instant) -> Vec<Emit> {
        self.push_through(0, vec![Emit::close(at)])
    }

    /// The earliest deadline of any toxic.
    pub fn deadline(&self) -> Option<Instant> {
        self.links.iter().filter_map(|(_, t)| t.deadline()).min()
    }

    /// Fires every deadline that has passed at `now`.
    pub fn on_deadline(&mut self, now: Instant) -> Vec<Emit> {
        let mut result = Vec::new();
        for i in 0..self.links.len() {
            if self.links[i].1.deadline().is_some_and(|d| d <= now) {
                let mut out = Vec::new();
                self.links[i].1.on_deadline(now, &mut out);
                result.extend(self.push_through(i + 1, out));
            }
        }
        result
    }

    fn push_through(&mut self, from: usize, mut emits: Vec<Emit>) -> Vec<Emit> {
        for (_, toxic) in self.links.iter_mut().skip(from) {
            let mut next = Vec::with_capacity(emits.len());
            for e in emits {
                match e.action {
                    Action::Data(d) => toxic.on_data(e.at, d, &mut next),
                    Action::Close => toxic.on_close(e.at, &mut next),
                    Action::Reset => next.push(e),
                }
            }
            emits = next;
        }
        emits
    }
}

/// Milliseconds to a [`Duration`].
pub(crate) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(ms: u64) -> ToxicSpec {
        ToxicSpec::new(
            ToxicKind::Latency(latency::Config {
                latency: ms,
                jitter: 0,
            }),
            Stream::Downstream,
        )
    }

    #[test]
    fn a_toxic_without_a_name_is_named_after_its_type_and_stream() {
        let spec: ToxicSpec =
            serde_json::from_str(r#"{"type":"latency","attributes":{"latency":5}}"#).unwrap();
        assert_eq!(spec.name, "latency_downstream");
        assert_eq!(spec.toxicity, 1.0);
        assert_eq!(
            spec.kind,
            ToxicKind::Latency(latency::Config {
                latency: 5,
                jitter: 0
            })
        );
    }

    #[test]
    fn a_toxic_serializes_in_toxiproxy_shape() {
        let v = serde_json::to_value(latency(7)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"latency_downstream","type":"latency","stream":"downstream",
                "toxicity":1.0,"attributes":{"latency":7,"jitter":0}})
        );
    }

    #[test]
    fn an_unknown_type_or_stream_is_rejected() {
        let e = ToxicSpec::try_from(ToxicWire {
            name: String::new(),
            kind: "mars".into(),
            stream: "up".into(),
            toxicity: 1.0,
            attributes: serde_json::Value::Null,
        });
        assert!(matches!(e, Err(Error::InvalidToxicType(_))));
        assert!(matches!(
            Stream::parse("sideways"),
            Err(Error::InvalidStream)
        ));
    }

    #[test]
    fn patching_keeps_the_attributes_not_mentioned() {
        let k = ToxicKind::Latency(latency::Config {
            latency: 100,
            jitter: 10,
        });
        let p = k.patched(&serde_json::json!({"jitter": 50})).unwrap();
        assert_eq!(
            p,
            ToxicKind::Latency(latency::Config {
                latency: 100,
                jitter: 50
            })
        );
    }

    #[test]
    fn seeds_differ_by_connection_and_toxic_but_replay_identically() {
        assert_eq!(toxic_seed(1, 2, "a"), toxic_seed(1, 2, "a"));
        assert_ne!(toxic_seed(1, 2, "a"), toxic_seed(1, 3, "a"));
        assert_ne!(toxic_seed(1, 2, "a"), toxic_seed(1, 2, "b"));
        assert_ne!(toxic_seed(1, 2, "a"), toxic_seed(2, 2, "a"));
    }

    #[test]
    fn toxicity_zero_never_applies_and_one_always_does() {
        let now = Instant::now();
        let never = latency(100).with_toxicity(0.0);
        let always = latency(100);
        for seed in 0..1000 {
            let mut out = Vec::new();
            instantiate(&never, seed, now).on_data(now, b"x".to_vec(), &mut out);
            assert_eq!(out[0].at, now);
            out.clear();
            instantiate(&always, seed, now).on_data(now, b"x".to_vec(), &mut out);
            assert_eq!(out[0].at, now + ms(100));
        }
    }

    #[test]
    fn toxicity_one_half_applies_to_about_half_of_the_connections() {
        let now = Instant::now();
        let half = latency(100).with_toxicity(0.5);
        let applied = (0..1000)
            .filter(|c| {
                let mut out = Vec::new();
                instantiate(&half, toxic_seed(42, *c, &half.name), now).on_data(
                    now,
                    vec![1],
                    &mut out,
                );
                out[0].at > now
            })
            .count();
        assert!((400..600).contains(&applied), "{applied}");
    }

    #[test]
    fn a_chain_feeds_each_toxic_the_output_of_the_previous_one() {
        let now = Instant::now();
        let mut chain = Chain::new(0, 0);
        let slicer = ToxicSpec::new(
            ToxicKind::Slicer(slicer::Config {
                average_size: 2,
                size_variation: 0,
                delay: 0,
            }),
            Stream::Downstream,
        );
        assert!(chain.sync(&[latency(10), slicer], now).is_empty());
        let out = chain.on_data(now, b"abcd".to_vec());
        assert_eq!(
            out,
            vec![
                Emit::data(now + ms(10), b"ab".to_vec()),
                Emit::data(now + ms(10), b"cd".to_vec())
            ]
        );
    }

    #[test]
    fn removing_a_timeout_from_a_live_chain_closes_the_connection() {
        let now = Instant::now();
        let mut chain = Chain::new(0, 0);
        let hang = ToxicSpec::new(
            ToxicKind::Timeout(timeout::Config { timeout: 0 }),
            Stream::Downstream,
        );
        chain.sync(&[hang], now);
        assert!(chain.on_data(now, b"lost".to_vec()).is_empty());
        assert_eq!(chain.sync(&[], now), vec![Emit::close(now)]);
        assert!(chain.is_empty());
    }
}
