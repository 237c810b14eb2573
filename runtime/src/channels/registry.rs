//! The channel registry: every `#[channel]` of the binary (collected by `inventory`) in one
//! `matchit` router, built once at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use super::authorizer::{Authorizer, ErasedChannel};
use super::error::ChannelConfigError;

/// One `#[channel]`, as the macro registers it: `'static` strings and a constructor.
///
/// Generated code builds these; applications never need to.
#[derive(Debug)]
pub struct ChannelRegistration {
    route: &'static str,
    pattern: &'static str,
    type_name: &'static str,
    make: fn() -> Arc<dyn ErasedChannel>,
}

impl ChannelRegistration {
    /// A registration for `T`: `route` in matchit syntax (`chats/{id}`), `pattern` as the
    /// user wrote it (`chats/:id`), and the type's name for messages.
    pub const fn new<T: Authorizer + Default>(
        route: &'static str,
        pattern: &'static str,
        type_name: &'static str,
    ) -> Self {
        ChannelRegistration {
            route,
            pattern,
            type_name,
            make: make::<T>,
        }
    }

    /// The pattern as written in `#[channel("...")]`.
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// The name of the channel type.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

fn make<T: Authorizer + Default>() -> Arc<dyn ErasedChannel> {
    Arc::new(T::default())
}

inventory::collect!(ChannelRegistration);

/// The most parameters one route may have (the router renames them with single letters internally, and
/// panics past that).
const MAX_PARAMS: usize = 25;

/// How many `{param}`s a matchit route has (`{{` is an escaped brace, not a parameter).
fn route_params(route: &str) -> usize {
    let mut count = 0;
    let mut chars = route.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' {
            if chars.peek() == Some(&'{') {
                chars.next();
            } else {
                count += 1;
            }
        }
    }
    count
}

/// A registered channel type, ready to authorize joins.
pub(crate) struct Channel {
    pub(crate) pattern: &'static str,
    pub(crate) type_name: &'static str,
    pub(crate) handler: Arc<dyn ErasedChannel>,
}

/// All channel types of the application, in one router.
pub struct Registry {
    router: matchit::Router<usize>,
    channels: Vec<Channel>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.channels.iter().map(|c| (c.type_name, c.pattern)))
            .finish()
    }
}

/// The params of a matched channel name, in pattern order.
pub type Params = Vec<(String, String)>;

impl Registry {
    /// Every channel registered with `#[channel]` in this binary.
    ///
    /// # Errors
    /// [`ChannelConfigError::ChannelConflict`] naming both types when two patterns conflict.
    pub fn from_inventory() -> Result<Registry, ChannelConfigError> {
        Self::from_registrations(inventory::iter::<ChannelRegistration>)
    }

    /// A registry of exactly these registrations.
    ///
    /// # Errors
    /// [`ChannelConfigError`] when two patterns conflict or one is invalid.
    pub fn from_registrations<'a>(
        registrations: impl IntoIterator<Item = &'a ChannelRegistration>,
    ) -> Result<Registry, ChannelConfigError> {
        let mut registrations: Vec<&ChannelRegistration> = registrations.into_iter().collect();
        // inventory's order depends on the linker; sort so errors name the same pair each run.
        registrations.sort_by_key(|r| (r.pattern, r.type_name));
        let mut router = matchit::Router::new();
        let mut channels = Vec::with_capacity(registrations.len());
        let mut by_route: HashMap<String, usize> = HashMap::new();
        for registration in registrations {
            if route_params(registration.route) > MAX_PARAMS {
                return Err(ChannelConfigError::InvalidPattern {
                    channel: registration.type_name,
                    pattern: registration.pattern,
                    reason: format!("more than {MAX_PARAMS} parameters"),
                });
            }
            let route = format!("/{}", registration.route);
            match router.insert(route.clone(), channels.len()) {
                Ok(()) => {}
                Err(matchit::InsertError::Conflict { with }) => {
                    let first = by_route
                        .get(&with)
                        .and_then(|&i| channels.get(i))
                        .or_else(|| channels.first())
                        .map_or(("?", "?"), |c: &Channel| (c.type_name, c.pattern));
                    return Err(ChannelConfigError::ChannelConflict {
                        first: first.0,
                        first_pattern: first.1,
                        second: registration.type_name,
                        second_pattern: registration.pattern,
                    });
                }
                Err(err) => {
                    return Err(ChannelConfigError::InvalidPattern {
                        channel: registration.type_name,
                        pattern: registration.pattern,
                        reason: err.to_string(),
                    });
                }
            }
            by_route.insert(route, channels.len());
            channels.push(Channel {
                pattern: registration.pattern,
                type_name: registration.type_name,
                handler: (registration.make)(),
            });
        }
        Ok(Registry { router, channels })
    }

    /// How many channel types are registered.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether no channel type is registered.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The patterns, with their types' names.
    pub fn patterns(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.channels.iter().map(|c| (c.type_name, c.pattern))
    }

    /// The channel type whose pattern matches `name`, with the params taken from it.
    pub(crate) fn resolve(&self, name: &str) -> Option<(&Channel, Params)> {
        let path = format!("/{name}");
        let matched = self.router.at(&path).ok()?;
        let channel = self.channels.get(*matched.value)?;
        let params = matched
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some((channel, params))
    }

    /// Whether some pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.router.at(&format!("/{name}")).is_ok()
    }
}
