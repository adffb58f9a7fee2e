//! The parallel-or-serial loops of the training core, each with its one `cfg`: on rayon with the
//! `parallel` feature, in order on the calling thread without it (wasm32). Every loop here hands
//! each item to exactly one call and the items share nothing, so both ways give the same bits.

#[cfg(feature = "parallel")]
use rayon::prelude::*;

/// Worker threads of the current pool (1 without the `parallel` feature).
#[cfg(feature = "parallel")]
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Worker threads of the current pool (1 without the `parallel` feature).
#[cfg(not(feature = "parallel"))]
pub fn threads() -> usize {
    1
}

/// Runs `f` on every item.
pub fn for_each<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    #[cfg(feature = "parallel")]
    items.into_par_iter().for_each(f);
    #[cfg(not(feature = "parallel"))]
    items.into_iter().for_each(f);
}

/// Runs `f(index, item)` on every item of `items`.
pub fn for_each_mut<T: Send>(items: &mut [T], f: impl Fn(usize, &mut T) + Sync + Send) {
    #[cfg(feature = "parallel")]
    items.par_iter_mut().enumerate().for_each(|(i, x)| f(i, x));
    #[cfg(not(feature = "parallel"))]
    items.iter_mut().enumerate().for_each(|(i, x)| f(i, x));
}

/// Runs `f(index, chunk)` on every `width`-wide chunk of `data` (the last may be shorter), at
/// least `min_len` chunks per task.
pub fn for_each_chunk_mut<T: Send>(
    data: &mut [T],
    width: usize,
    min_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    #[cfg(feature = "parallel")]
    data.par_chunks_mut(width).with_min_len(min_len).enumerate().for_each(|(i, c)| f(i, c));
    #[cfg(not(feature = "parallel"))]
    {
        let _ = min_len;
        data.chunks_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    }
}
