//! The planner: what an agent gets when it polls.
