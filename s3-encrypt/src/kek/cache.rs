//! [`CachedKek`]: a bounded cache of unwrapped data keys in front of any KEK.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{DataKey, KekFuture, KeyContext, KeyEncryptionKey, WrappedKey};

/// How many unwrapped data keys a [`CachedKek`] keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries; the oldest is evicted first. 0 disables the cache.
    pub capacity: usize,
    /// How long an entry is served after it was stored.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    /// 10 000 data keys for 5 minutes.
    fn default() -> Self {
        Self {
            capacity: 10_000,
            ttl: Duration::from_mins(5),
        }
    }
}

/// What a data key is cached under: the wrapped key and its context.
type CacheKey = (WrappedKey, KeyContext);

struct Entry {
    key: Zeroizing<[u8; 32]>,
    stored: Instant,
}

#[derive(Default)]
struct State {
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order, oldest first (may name entries already removed).
    order: VecDeque<(CacheKey, Instant)>,
}

/// A KEK whose unwrapped data keys are cached, keyed by wrapped key and context, for a while:
/// repeated reads of an object (or the parts of a multipart upload) unwrap once, and a cached
/// data key is still served while the key service is briefly unreachable.
///
/// Data keys it makes with [`KeyEncryptionKey::generate_data_key`] are cached too. Entries are
/// zeroized when evicted, expired, or when the cache drops. The name, errors and
/// [`KeyEncryptionKey::check`] are the inner KEK's.
pub struct CachedKek<K> {
    inner: K,
    config: CacheConfig,
    state: Mutex<State>,
}

impl<K: fmt::Debug> fmt::Debug for CachedKek<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedKek")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K> CachedKek<K> {
    /// `inner` behind a cache of `config`.
    pub fn new(inner: K, config: CacheConfig) -> Self {
        Self {
            inner,
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// The wrapped KEK.
    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// How many data keys are cached (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no data key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets (and zeroizes) every cached data key.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.entries.clear();
        state.order.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, cache_key: &CacheKey) -> Option<DataKey> {
        if self.config.capacity == 0 {
            return None;
        }
        let mut state = self.lock();
        let fresh = state
            .entries
            .get(cache_key)
            .map(|e| e.stored.elapsed() < self.config.ttl)?;
        if fresh {
            state
                .entries
                .get(cache_key)
                .map(|e| DataKey::from_bytes(*e.key))
        } else {
            state.entries.remove(cache_key);
            None
        }
    }

    fn put(&self, cache_key: CacheKey, data_key: &DataKey) {
        if self.config.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        // Sweep expired entries from the old end, then make room.
        while let Some((_, stored)) = state.order.front() {
            let expired = now.saturating_duration_since(*stored) >= self.config.ttl;
            if !expired && state.entries.len() < self.config.capacity {
                break;
            }
            if let Some((old, stored)) = state.order.pop_front()
                && state.entries.get(&old).is_some_and(|e| e.stored == stored)
            {
                state.entries.remove(&old);
            }
        }
        state.order.push_back((cache_key.clone(), now));
        state.entries.insert(
            cache_key,
            Entry {
                key: Zeroizing::new(*data_key.as_bytes()),
                stored: now,
            },
        );
    }
}

impl<K: KeyEncryptionKey> KeyEncryptionKey for CachedKek<K> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn generate_data_key<'a>(
        &'a self,
        context: &'a KeyContext,
    ) -> KekFuture<'a, (DataKey, WrappedKey)> {
        Box::pin(async move {
            let (data_key, wrapped) = self.inner.generate_data_key(context).await?;
            self.put((wrapped.clone(), context.clone()), &data_key);
            Ok((data_key, wrapped))
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a KeyContext,
    ) -> KekFuture<'a, DataKey> {
        Box::pin(async move {
            let cache_key = (wrapped.clone(), context.clone());
            if let Some(data_key) = self.get(&cache_key) {
                return Ok(data_key);
            }
            let data_key = self.inner.unwrap(wrapped, context).await?;
            self.put(cache_key, &data_key);
            Ok(data_key)
        })
    }

    fn check(&self) -> KekFuture<'_, ()> {
        self.inner.check()
    }
}
