//! Metadata storage behind the [`Db`] trait.
