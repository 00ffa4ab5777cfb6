//! Typed indices of the session's graph ([`super::view::View`]): a value and a node are
//! positions in its `vals` and `nodes`, kept apart by type, and the vectors and flat lists
//! indexed by them.

use std::marker::PhantomData;

/// A position in a vector of the view.
pub(super) trait Id: Copy {
    fn new(i: usize) -> Self;
    fn index(self) -> usize;
}

impl Id for usize {
    fn new(i: usize) -> Self {
        i
    }
    fn index(self) -> usize {
        self
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(super) struct $name(u32);

        impl Id for $name {
            fn new(i: usize) -> Self {
                debug_assert!(i < u32::MAX as usize);
                $name(i as u32)
            }
            fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A value of the view: the values of the graph given keep their ids (`ValueId(i)` is
    /// `VValId(i)`); values the optimizer makes come after them.
    VValId
);
id_type!(
    /// A node of the view: its position in `View::nodes`, valid until the nodes change.
    VNodeId
);

impl From<onnx_ac_passes::ir::ValueId> for VValId {
    fn from(v: onnx_ac_passes::ir::ValueId) -> Self {
        VValId::new(v.index())
    }
}

/// A vector indexed by `I`.
#[derive(Clone, Debug)]
pub(super) struct IdVec<I, T> {
    raw: Vec<T>,
    _id: PhantomData<fn(I)>,
}

impl<I: Id, T> IdVec<I, T> {
    pub(super) fn from_vec(raw: Vec<T>) -> Self {
        IdVec {
            raw,
            _id: PhantomData,
        }
    }

    pub(super) fn from_elem(x: T, n: usize) -> Self
    where
        T: Clone,
    {
        Self::from_vec(vec![x; n])
    }

    pub(super) fn len(&self) -> usize {
        self.raw.len()
    }

    /// Appends `x` and returns its id.
    pub(super) fn push(&mut self, x: T) -> I {
        self.raw.push(x);
        I::new(self.raw.len() - 1)
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.raw.iter()
    }

    pub(super) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.raw.iter_mut()
    }

    /// The elements with their ids.
    pub(super) fn iter_enumerated(&self) -> impl Iterator<Item = (I, &T)> + '_ {
        self.raw.iter().enumerate().map(|(i, x)| (I::new(i), x))
    }

    /// Every id, in order.
    pub(super) fn ids(&self) -> impl Iterator<Item = I> + use<I, T> {
        (0..self.raw.len()).map(I::new)
    }

    pub(super) fn as_slice(&self) -> &[T] {
        &self.raw
    }

    pub(super) fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        self.raw.retain(f)
    }

    pub(super) fn extend(&mut self, it: impl IntoIterator<Item = T>) {
        self.raw.extend(it)
    }

    pub(super) fn get(&self, i: I) -> Option<&T> {
        self.raw.get(i.index())
    }
}

impl<I: Id, T> std::ops::Index<I> for IdVec<I, T> {
    type Output = T;
    fn index(&self, i: I) -> &T {
        &self.raw[i.index()]
    }
}

impl<I: Id, T> std::ops::IndexMut<I> for IdVec<I, T> {
    fn index_mut(&mut self, i: I) -> &mut T {
        &mut self.raw[i.index()]
    }
}

impl<I: Id, T> FromIterator<T> for IdVec<I, T> {
    fn from_iter<It: IntoIterator<Item = T>>(it: It) -> Self {
        Self::from_vec(it.into_iter().collect())
    }
}

/// Lists of `V` per `K`, flat.
pub(super) struct Csr<K, V> {
    /// Where each list starts in `items` (one more entry than lists).
    pub(super) start: Vec<usize>,
    pub(super) items: Vec<V>,
    pub(super) _key: PhantomData<fn(K)>,
}

impl<K, V> Csr<K, V> {
    pub(super) fn new(start: Vec<usize>, items: Vec<V>) -> Self {
        Csr {
            start,
            items,
            _key: PhantomData,
        }
    }
}

impl<K: Id, V> std::ops::Index<K> for Csr<K, V> {
    type Output = [V];
    fn index(&self, k: K) -> &[V] {
        let i = k.index();
        &self.items[self.start[i]..self.start[i + 1]]
    }
}

impl<'a, I: Id, T> IntoIterator for &'a IdVec<I, T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.raw.iter()
    }
}

impl<I, T> Default for IdVec<I, T> {
    fn default() -> Self {
        IdVec {
            raw: Vec::new(),
            _id: PhantomData,
        }
    }
}
