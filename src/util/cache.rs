//! A bounded memory in two generations, keyed by a SHA-256: what the signature memory
//! (`verify::signatures`) and the shared certificate parses (`peer::recent`) both keep.
//!
//! When the current generation is full it becomes the previous one and the previous one is
//! forgotten, so at most two generations are held; an entry found in the previous generation
//! moves back into the current one, so what is used keeps being remembered.

use std::collections::HashMap;

/// At most `2 * capacity` entries, in two generations.
pub(crate) struct Generations<V> {
    capacity: usize,
    current: HashMap<[u8; 32], V>,
    previous: HashMap<[u8; 32], V>,
}

impl<V: Clone> Generations<V> {
    /// An empty memory of `capacity` entries per generation.
    pub(crate) fn new(capacity: usize) -> Self {
        Generations {
            capacity,
            current: HashMap::new(),
            previous: HashMap::new(),
        }
    }

    /// The value under `key` if `accept` takes it, moving it back into the current
    /// generation when it was found in the previous one. A value `accept` refuses in the
    /// previous generation is dropped.
    pub(crate) fn get(&mut self, key: &[u8; 32], accept: impl Fn(&V) -> bool) -> Option<V> {
        if let Some(value) = self.current.get(key).filter(|v| accept(v)) {
            return Some(value.clone());
        }
        let value = self.previous.remove(key).filter(|v| accept(v))?;
        self.insert(*key, value.clone());
        Some(value)
    }

    /// The value under `key` in the current generation, without moving anything.
    pub(crate) fn current(&self, key: &[u8; 32]) -> Option<&V> {
        self.current.get(key)
    }

    /// Remembers `value` under `key` in the current generation, starting a new generation
    /// first when it is full.
    pub(crate) fn insert(&mut self, key: [u8; 32], value: V) {
        if self.current.len() >= self.capacity {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    /// How many entries are held, in both generations.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(&i.to_be_bytes());
        key
    }

    #[test]
    fn bounded_to_two_generations_and_a_used_entry_moves_back() {
        let mut memory = Generations::new(4);
        memory.insert(key(100), 100);
        for i in 0..4 {
            memory.insert(key(i), i);
        }
        // Rolled over once: the first entry is in the previous generation.
        assert!(memory.current(&key(100)).is_none());
        assert_eq!(memory.get(&key(100), |_| true), Some(100));
        assert_eq!(memory.current(&key(100)), Some(&100), "moved back");
        for i in 10..30 {
            memory.insert(key(i), i);
            assert!(memory.len() <= 8);
        }
        assert!(memory.len() > 4, "a full generation is kept, not cleared");
        assert_eq!(memory.get(&key(100), |_| true), None, "forgotten after two");
    }

    #[test]
    fn a_refused_value_is_not_returned() {
        let mut memory = Generations::new(4);
        memory.insert(key(1), 1);
        assert_eq!(memory.get(&key(1), |v| *v == 2), None);
        assert_eq!(
            memory.get(&key(1), |v| *v == 1),
            Some(1),
            "still there in current"
        );
    }
}
