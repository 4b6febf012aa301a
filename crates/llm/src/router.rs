//! Which provider and model answer for each agent: a default plus per-agent overrides. Later
//! issues add cloud providers, failover, rate limits and pricing behind this same seam.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::Provider;

/// A provider and the model to ask it for.
#[derive(Clone)]
pub struct Route {
    /// The provider.
    pub provider: Arc<dyn Provider>,
    /// The model name sent in requests.
    pub model: String,
}

impl Route {
    /// `provider` with its default model.
    pub fn default_for(provider: Arc<dyn Provider>) -> Self {
        let model = provider.default_model().to_owned();
        Self { provider, model }
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider.id(), self.model)
    }
}

/// Maps agent ids to routes.
#[derive(Clone, Debug)]
pub struct Router {
    default: Route,
    agents: HashMap<String, Route>,
}

impl Router {
    /// Every agent uses `provider` with its default model.
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        Self {
            default: Route::default_for(provider),
            agents: HashMap::new(),
        }
    }

    /// The default route is `provider` with `model`.
    pub fn with_default_model(mut self, model: impl Into<String>) -> Self {
        self.default.model = model.into();
        self
    }

    /// Agent `agent` uses `provider` with `model` (empty: the provider's default model).
    pub fn with_agent(
        mut self,
        agent: impl Into<String>,
        provider: Arc<dyn Provider>,
        model: impl Into<String>,
    ) -> Self {
        let mut model = model.into();
        if model.is_empty() {
            model = provider.default_model().to_owned();
        }
        self.agents.insert(agent.into(), Route { provider, model });
        self
    }

    /// The route for `agent`: its override, else the default.
    pub fn route(&self, agent: &str) -> &Route {
        self.agents.get(agent).unwrap_or(&self.default)
    }

    /// The provider and model for `agent`.
    pub fn for_agent(&self, agent: &str) -> (Arc<dyn Provider>, String) {
        let route = self.route(agent);
        (Arc::clone(&route.provider), route.model.clone())
    }

    /// The default route.
    pub fn default_route(&self) -> &Route {
        &self.default
    }

    /// Every provider wrapped by `wrap` (for example in a
    /// [`RecordingProvider`](crate::RecordingProvider)); models are kept. A provider shared by
    /// several routes is wrapped once.
    pub fn map_providers(
        self,
        mut wrap: impl FnMut(Arc<dyn Provider>) -> Arc<dyn Provider>,
    ) -> Self {
        let mut wrapped: Vec<(Arc<dyn Provider>, Arc<dyn Provider>)> = Vec::new();
        let mut map = |provider: Arc<dyn Provider>| -> Arc<dyn Provider> {
            if let Some((_, done)) = wrapped
                .iter()
                .find(|(orig, _)| Arc::ptr_eq(orig, &provider))
            {
                return Arc::clone(done);
            }
            let done = wrap(Arc::clone(&provider));
            wrapped.push((provider, Arc::clone(&done)));
            done
        };
        let default = Route {
            provider: map(self.default.provider),
            model: self.default.model,
        };
        let agents = self
            .agents
            .into_iter()
            .map(|(agent, route)| {
                (
                    agent,
                    Route {
                        provider: map(route.provider),
                        model: route.model,
                    },
                )
            })
            .collect();
        Self { default, agents }
    }
}
