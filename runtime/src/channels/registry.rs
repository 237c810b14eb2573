//! The channel registry: every `#[channel]` of the binary (collected by `inventory`) in one
//! `matchit` router, built once at start-up.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use super::authorizer::{Authorizer, ErasedChannel};
use super::error::ChannelConfigError;

/// A channel type whose parameters are typed fields (`#[channel("chats/:id")] struct
/// ChatChannel { id: u64 }`): built from a concrete channel name's params for every join and
/// hook. `#[channel]` implements it; applications never need to.
pub trait FromParams: Sized {
    /// The channel value for these params (in pattern order).
    ///
    /// # Errors
    /// [`ParamError`] when a param does not parse into its field's type.
    fn from_params(params: &[(String, String)]) -> Result<Self, ParamError>;
}

/// A channel name's parameter that does not fit its field: the join is refused `invalid`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel parameter `{name}` is not a valid {type_name}")]
pub struct ParamError {
    /// The parameter.
    pub name: &'static str,
    /// The field's type.
    pub type_name: &'static str,
}

/// Param `name` of `params`, parsed (what generated `FromParams` code calls).
///
/// # Errors
/// [`ParamError`] when it is missing or does not parse.
pub fn param<T: FromStr>(params: &[(String, String)], name: &'static str) -> Result<T, ParamError> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.parse().ok())
        .ok_or(ParamError {
            name,
            type_name: std::any::type_name::<T>(),
        })
}

/// Something that names a concrete channel: a `&str` / `String` (`"chats/1"`), or a value of a
/// `#[channel]` type with typed parameters (`ChatChannel { id: 1 }`), whose `Display` is its
/// name, so that a typo in a channel's name is a compile error.
pub trait ChannelName {
    /// The concrete channel name.
    fn channel_name(&self) -> Cow<'_, str>;
}

impl ChannelName for str {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl ChannelName for String {
    fn channel_name(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl<T: ChannelName + ?Sized> ChannelName for &T {
    fn channel_name(&self) -> Cow<'_, str> {
        (**self).channel_name()
    }
}

/// How a registration makes the channel value its hooks run on.
#[derive(Debug, Clone, Copy)]
enum Make {
    /// One value for every name, made with `Default` when the registry is built.
    Once(fn() -> Arc<dyn ErasedChannel>),
    /// A value per concrete name, from its params.
    PerName(fn(&Params) -> Result<Box<dyn ErasedChannel>, ParamError>),
}

/// One `#[channel]`, as the macro registers it: `'static` strings and a constructor.
///
/// Generated code builds these; applications never need to.
#[derive(Debug)]
pub struct ChannelRegistration {
    pattern: &'static str,
    type_name: &'static str,
    make: Make,
    intercept: &'static [&'static str],
    presence: bool,
}

impl ChannelRegistration {
    /// A registration for `T`: its pattern as the user wrote it (`chats/:id`, `room:*`), and
    /// the type's name for messages.
    pub const fn new<T: Authorizer + Default>(
        pattern: &'static str,
        type_name: &'static str,
    ) -> Self {
        ChannelRegistration {
            pattern,
            type_name,
            make: Make::Once(make::<T>),
            intercept: T::INTERCEPT,
            presence: T::PRESENCE,
        }
    }

    /// A registration for `T` whose parameters are its fields: a value is built from the
    /// params of each concrete name.
    pub const fn typed<T: Authorizer + FromParams>(
        pattern: &'static str,
        type_name: &'static str,
    ) -> Self {
        ChannelRegistration {
            pattern,
            type_name,
            make: Make::PerName(make_typed::<T>),
            intercept: T::INTERCEPT,
            presence: T::PRESENCE,
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

fn make_typed<T: Authorizer + FromParams>(
    params: &Params,
) -> Result<Box<dyn ErasedChannel>, ParamError> {
    Ok(Box::new(T::from_params(params)?))
}

inventory::collect!(ChannelRegistration);

/// The most parameters one pattern may have (the router renames them with single letters
/// internally, and panics past that).
const MAX_PARAMS: usize = 25;

/// The parameter name under which the router keeps an unnamed wildcard (`room:*`); it is
/// handed to the channel as `*`.
const UNNAMED: &str = "__";

/// Translates a pattern (see the `#[channel]` attribute) into the router's syntax, checking it
/// again: registrations made by hand do not go through the macro.
fn route(pattern: &str) -> Result<String, String> {
    let is_name = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let segments: Vec<&str> = pattern.split('/').collect();
    let last = segments.len() - 1;
    let mut route = String::with_capacity(pattern.len() + 8);
    let mut params = 0;
    for (index, segment) in segments.iter().enumerate() {
        route.push('/');
        if segment.is_empty() {
            return Err("empty segment".to_owned());
        }
        if let Some(name) = segment.strip_prefix(':') {
            if !is_name(name) {
                return Err(format!("invalid parameter name in `{segment}`"));
            }
            params += 1;
            route.push_str(&format!("{{{name}}}"));
            continue;
        }
        let Some((prefix, name)) = segment.split_once('*') else {
            route.push_str(&segment.replace('{', "{{").replace('}', "}}"));
            continue;
        };
        if index != last {
            return Err(format!("`{segment}` must be in the last segment"));
        }
        if !name.is_empty() && !is_name(name) {
            return Err(format!("invalid catch-all name in `{segment}`"));
        }
        if name.is_empty() && prefix.is_empty() {
            return Err("a catch-all needs a name".to_owned());
        }
        params += 1;
        route.push_str(&prefix.replace('{', "{{").replace('}', "}}"));
        route.push_str(&format!(
            "{{*{}}}",
            if name.is_empty() { UNNAMED } else { name }
        ));
    }
    if params > MAX_PARAMS {
        return Err(format!("more than {MAX_PARAMS} parameters"));
    }
    Ok(route)
}

/// A registered channel type, ready to authorize joins.
pub(crate) struct Channel {
    pub(crate) pattern: &'static str,
    pub(crate) type_name: &'static str,
    handler: Handler,
    /// The events filtered per member (`Authorizer::INTERCEPT`).
    pub(crate) intercept: &'static [&'static str],
    /// Whether it tracks presence (`Authorizer::PRESENCE`).
    pub(crate) presence: bool,
}

enum Handler {
    Shared(Arc<dyn ErasedChannel>),
    PerName(fn(&Params) -> Result<Box<dyn ErasedChannel>, ParamError>),
}

/// The channel value one call runs on: the shared one, or one built for the name.
pub(crate) enum Instance<'a> {
    Shared(&'a dyn ErasedChannel),
    Owned(Box<dyn ErasedChannel>),
}

impl std::ops::Deref for Instance<'_> {
    type Target = dyn ErasedChannel;

    fn deref(&self) -> &Self::Target {
        match self {
            Instance::Shared(handler) => *handler,
            Instance::Owned(handler) => handler.as_ref(),
        }
    }
}

impl Channel {
    /// The channel value for a concrete name with these params.
    pub(crate) fn instance(&self, params: &Params) -> Result<Instance<'_>, ParamError> {
        match &self.handler {
            Handler::Shared(handler) => Ok(Instance::Shared(handler.as_ref())),
            Handler::PerName(make) => make(params).map(Instance::Owned),
        }
    }
}

/// All channel types of the application, in one router.
pub struct Registry {
    router: matchit::Router<usize>,
    channels: Vec<Channel>,
    /// Some channel filters events per member (`Authorizer::INTERCEPT`).
    intercepts: bool,
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
            let route = route(registration.pattern).map_err(|reason| {
                ChannelConfigError::InvalidPattern {
                    channel: registration.type_name,
                    pattern: registration.pattern,
                    reason,
                }
            })?;
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
                handler: match registration.make {
                    Make::Once(make) => Handler::Shared(make()),
                    Make::PerName(make) => Handler::PerName(make),
                },
                intercept: registration.intercept,
                presence: registration.presence,
            });
        }
        let intercepts = channels.iter().any(|c| !c.intercept.is_empty());
        Ok(Registry {
            router,
            channels,
            intercepts,
        })
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
            .map(|(k, v)| (if k == UNNAMED { "*" } else { k }.to_owned(), v.to_owned()))
            .collect();
        Some((channel, params))
    }

    /// Whether some channel type filters events per member.
    pub(crate) fn intercepts_any(&self) -> bool {
        self.intercepts
    }

    /// Whether some pattern matches `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.router.at(&format!("/{name}")).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_routes() {
        for (pattern, expected) in [
            ("chats/:id", "/chats/{id}"),
            ("files/*path", "/files/{*path}"),
            ("room:*", "/room:{*__}"),
            ("room:*id", "/room:{*id}"),
            ("rooms:lobby", "/rooms:lobby"),
            ("a/:x/b:*", "/a/{x}/b:{*__}"),
            ("{x}/:y", "/{{x}}/{y}"),
        ] {
            assert_eq!(route(pattern).as_deref(), Ok(expected), "{pattern}");
        }
        for bad in [
            "", "a//b", "a/", ":1", "room:*/x", "a/*", "a/:b-c", "x:*a-b",
        ] {
            assert!(route(bad).is_err(), "{bad} accepted");
        }
    }

    #[derive(Default)]
    struct Any;

    impl Authorizer for Any {
        async fn pass(&self, _: &crate::channels::JoinContext<'_>) -> bool {
            true
        }
    }

    static ROOM: ChannelRegistration = ChannelRegistration::new::<Any>("room:*", "Room");
    static ROOMS: ChannelRegistration = ChannelRegistration::new::<Any>("rooms:lobby", "Rooms");
    static CHATS: ChannelRegistration = ChannelRegistration::new::<Any>("chats/:id", "Chats");
    static NAMED: ChannelRegistration =
        ChannelRegistration::new::<Any>("challenges:*id", "Challenges");

    #[test]
    fn phoenix_style_topics_resolve_beside_paths() {
        let registry = Registry::from_registrations([&ROOM, &ROOMS, &CHATS, &NAMED])
            .unwrap_or_else(|e| panic!("{e}"));
        let resolve = |name: &str| {
            registry
                .resolve(name)
                .map(|(channel, params)| (channel.type_name, params))
        };
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|&(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Params>()
        };
        assert_eq!(
            resolve("room:lobby"),
            Some(("Room", params(&[("*", "lobby")])))
        );
        assert_eq!(
            resolve("room:42/x"),
            Some(("Room", params(&[("*", "42/x")])))
        );
        assert_eq!(resolve("rooms:lobby"), Some(("Rooms", params(&[]))));
        assert_eq!(resolve("chats/1"), Some(("Chats", params(&[("id", "1")]))));
        assert_eq!(
            resolve("challenges:7"),
            Some(("Challenges", params(&[("id", "7")])))
        );
        assert_eq!(resolve("room:"), None, "the rest is at least one character");
        assert_eq!(resolve("rooms:other"), None);
        assert_eq!(resolve("lobby"), None);
    }
}
