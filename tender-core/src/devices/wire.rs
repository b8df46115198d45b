//! An in-memory Ethernet wire: two connected ports, each a
//! [`FrameBackend`], so two network devices of the mock tender can talk to
//! each other through the real NET_WRITE/NET_READ handlers.
//!
//! The wire can be impaired, deterministically: a seeded generator decides,
//! frame by frame, whether a frame is lost, duplicated, or held back and
//! delivered after the next frame of the same direction (reordering). The
//! same seed and the same traffic give the same impairments. A held-back
//! frame that no frame follows is delivered once the receiver has taken
//! everything queued before it, so reordering never turns into a loss.
//!
//! The ports of a wire may be used from two threads (the vCPU's hypercalls
//! and the ring's I/O thread): the wire's state is behind a mutex.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use vm_memory::VolatileSlice;

use super::frame::{FrameBackend, Readiness};

/// How a wire behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireConfig {
    /// Seed of the impairment generator.
    pub seed: u64,
    /// Probability (0 to 1) that a frame is lost.
    pub loss: f64,
    /// Probability that a frame is held back and delivered after the next
    /// frame of its direction.
    pub reorder: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Frames each direction can hold; more are dropped, as by a full link.
    pub capacity: usize,
    /// MTU of both ports, without the Ethernet header.
    pub mtu: u16,
}

impl Default for WireConfig {
    /// A clean wire: nothing lost, reordered or duplicated; MTU 1500.
    fn default() -> Self {
        WireConfig {
            seed: 0,
            loss: 0.0,
            reorder: 0.0,
            duplicate: 0.0,
            capacity: 4096,
            mtu: 1500,
        }
    }
}

impl WireConfig {
    /// A clean wire.
    pub fn clean() -> WireConfig {
        WireConfig::default()
    }

    /// A wire that loses, reorders and duplicates frames with these
    /// probabilities, decided by a generator seeded with `seed`.
    pub fn impaired(seed: u64, loss: f64, reorder: f64, duplicate: f64) -> WireConfig {
        WireConfig {
            seed,
            loss,
            reorder,
            duplicate,
            ..WireConfig::default()
        }
    }
}

/// What happened on a wire so far, both directions together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames the ports sent.
    pub sent: u64,
    /// Frames the ports received (duplicates count twice).
    pub delivered: u64,
    /// Frames lost by the impairment.
    pub lost: u64,
    /// Frames held back and delivered out of order.
    pub reordered: u64,
    /// Frames delivered an extra time.
    pub duplicated: u64,
    /// Frames dropped because the receiving direction was full.
    pub overflowed: u64,
}

/// Frames travelling towards one port.
#[derive(Default)]
struct Direction {
    queue: VecDeque<Vec<u8>>,
    /// A frame held back, to go after the next frame of this direction.
    held: Option<Vec<u8>>,
    /// NET_READs served by the receiving port, frame or not.
    receives: u64,
}

struct State {
    config: WireConfig,
    rng: u64,
    /// `towards[side]`: frames on their way to port `side`.
    towards: [Direction; 2],
    stats: WireStats,
}

impl State {
    /// splitmix64: small, fast, good enough to decide impairments.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`; draws nothing when `p` is 0.
    fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }

    fn enqueue(&mut self, to: usize, frame: Vec<u8>) {
        if self.towards[to].queue.len() >= self.config.capacity {
            self.stats.overflowed += 1;
        } else {
            self.towards[to].queue.push_back(frame);
        }
    }

    fn send(&mut self, to: usize, frame: Vec<u8>) {
        self.stats.sent += 1;
        if self.chance(self.config.loss) {
            self.stats.lost += 1;
            return;
        }
        if self.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            self.enqueue(to, frame.clone());
        }
        if self.towards[to].held.is_none() && self.chance(self.config.reorder) {
            self.stats.reordered += 1;
            self.towards[to].held = Some(frame);
            return;
        }
        self.enqueue(to, frame);
        if let Some(held) = self.towards[to].held.take() {
            self.enqueue(to, held);
        }
    }

    fn receive(&mut self, to: usize) -> Option<Vec<u8>> {
        let direction = &mut self.towards[to];
        direction.receives += 1;
        let frame = direction
            .queue
            .pop_front()
            .or_else(|| direction.held.take())?;
        self.stats.delivered += 1;
        Some(frame)
    }

    fn pending(&self, to: usize) -> usize {
        let direction = &self.towards[to];
        direction.queue.len() + usize::from(direction.held.is_some())
    }
}

/// Held sends: while the flag is set, every send waits (a host side that
/// stalls, for tests of what a full ring does).
type Gate = Arc<(Mutex<bool>, Condvar)>;

/// One end of a wire.
pub struct WirePort {
    state: Arc<Mutex<State>>,
    gate: Gate,
    side: usize,
    name: String,
}

/// A wire with `config` whose ends are named `names` (the names appear in
/// the tender's messages about them).
pub fn pair(config: WireConfig, names: [&str; 2]) -> (WirePort, WirePort) {
    let state = Arc::new(Mutex::new(State {
        config,
        rng: config.seed,
        towards: [Direction::default(), Direction::default()],
        stats: WireStats::default(),
    }));
    let gate = Gate::default();
    let port = |side: usize| WirePort {
        state: state.clone(),
        gate: gate.clone(),
        side,
        name: names[side].to_owned(),
    };
    (port(0), port(1))
}

impl WirePort {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent state:
        // every update is a single push or pop.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames waiting for this port.
    pub fn pending(&self) -> usize {
        self.state().pending(self.side)
    }

    /// How many times this port was asked for a frame, successfully or not.
    pub fn receive_calls(&self) -> u64 {
        self.state().towards[self.side].receives
    }

    /// What happened on the whole wire so far.
    pub fn stats(&self) -> WireStats {
        self.state().stats
    }

    /// The wire's configuration.
    pub fn config(&self) -> WireConfig {
        self.state().config
    }

    /// Makes every send on the wire, from either end, wait until
    /// `stalled` is set back to false.
    pub fn stall_sends(&self, stalled: bool) {
        let (flag, changed) = &*self.gate;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = stalled;
        changed.notify_all();
    }

    /// Changes the impairments of the whole wire from now on; the generator
    /// goes on from where it is (the seed of `config` is ignored).
    pub fn reconfigure(&self, config: WireConfig) {
        self.state().config = config;
    }
}

impl FrameBackend for WirePort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> u16 {
        self.state().config.mtu
    }

    fn send(&self, frame: &VolatileSlice<'_>) -> io::Result<usize> {
        let (flag, changed) = &*self.gate;
        let mut stalled = flag.lock().unwrap_or_else(|e| e.into_inner());
        while *stalled {
            stalled = changed.wait(stalled).unwrap_or_else(|e| e.into_inner());
        }
        drop(stalled);
        let mut bytes = vec![0u8; frame.len()];
        let copied = frame.copy_to(&mut bytes[..]);
        bytes.truncate(copied);
        self.state().send(1 - self.side, bytes);
        Ok(copied)
    }

    fn receive(&self, buffer: &mut VolatileSlice<'_>) -> io::Result<usize> {
        let frame = self.state().receive(self.side);
        match frame {
            // Truncated to the buffer, as a tap truncates.
            Some(frame) => {
                let n = frame.len().min(buffer.len());
                buffer.copy_from(&frame[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn readiness(&self) -> Readiness {
        let state = self.state();
        Readiness::Queue {
            waiting: state.pending(self.side),
            receives: state.towards[self.side].receives,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::memory::GuestRam;

    /// Sends `frames` (one byte each, the value) from `from` and returns
    /// what `to` receives, in order.
    fn exchange(from: &WirePort, to: &WirePort, frames: impl IntoIterator<Item = u8>) -> Vec<u8> {
        let ram = GuestRam::new(2 << 20).unwrap();
        for value in frames {
            ram.write_bytes(0x1000, &[value]).unwrap();
            assert_eq!(from.send(&ram.slice(0x1000, 1).unwrap()).unwrap(), 1);
        }
        let mut received = Vec::new();
        loop {
            let mut buffer = ram.slice(0x2000, 64).unwrap();
            match to.receive(&mut buffer) {
                Ok(n) => {
                    assert_eq!(n, 1);
                    let mut byte = [0u8];
                    ram.read_bytes(0x2000, &mut byte).unwrap();
                    received.push(byte[0]);
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    return received;
                }
            }
        }
    }

    #[test]
    fn a_clean_wire_delivers_in_order_both_ways() {
        let (a, b) = pair(WireConfig::clean(), ["a", "b"]);
        assert_eq!((a.name(), b.name(), a.mtu()), ("a", "b", 1500));
        assert_eq!(exchange(&a, &b, 0..10), (0..10).collect::<Vec<_>>());
        assert_eq!(exchange(&b, &a, [7, 8]), [7, 8]);
        assert_eq!(exchange(&a, &a, []), []);
        let stats = a.stats();
        assert_eq!((stats.sent, stats.delivered, stats.lost), (12, 12, 0));
        assert!(b.receive_calls() > 10);
    }

    #[test]
    fn impairments_are_deterministic_and_happen() {
        let config = WireConfig::impaired(42, 0.1, 0.1, 0.05);
        let run = || {
            let (a, b) = pair(config, ["a", "b"]);
            let received = exchange(&a, &b, (0..=255).cycle().take(2000));
            (received, a.stats())
        };
        let (first, stats) = run();
        assert_eq!(run().0, first, "same seed, same traffic, same result");
        assert!(stats.lost > 100 && stats.lost < 300, "{stats:?}");
        assert!(stats.reordered > 100, "{stats:?}");
        assert!(stats.duplicated > 50, "{stats:?}");
        assert_eq!(
            stats.delivered,
            stats.sent - stats.lost + stats.duplicated,
            "{stats:?}"
        );
        assert_eq!(first.len() as u64, stats.delivered);
        let out_of_order = first
            .windows(2)
            .filter(|w| w[1] != w[0].wrapping_add(1))
            .count();
        assert!(out_of_order > 300, "{out_of_order}");
    }

    #[test]
    fn a_held_frame_without_a_successor_is_not_lost() {
        let (a, b) = pair(WireConfig::impaired(1, 0.0, 1.0, 0.0), ["a", "b"]);
        // Every frame is held when nothing is: 0 held, 1 sent then 0, 2 held...
        assert_eq!(exchange(&a, &b, 0..5), [1, 0, 3, 2, 4]);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn a_full_direction_drops_and_long_frames_are_truncated() {
        let config = WireConfig {
            capacity: 3,
            ..WireConfig::clean()
        };
        let (a, b) = pair(config, ["a", "b"]);
        assert_eq!(exchange(&a, &b, 0..5), [0, 1, 2]);
        assert_eq!(a.stats().overflowed, 2);

        let ram = GuestRam::new(2 << 20).unwrap();
        ram.write_bytes(0x1000, &[9; 100]).unwrap();
        b.send(&ram.slice(0x1000, 100).unwrap()).unwrap();
        assert_eq!(a.pending(), 1);
        assert_eq!(a.receive(&mut ram.slice(0x3000, 10).unwrap()).unwrap(), 10);
        assert_eq!(a.pending(), 0);
    }
}
