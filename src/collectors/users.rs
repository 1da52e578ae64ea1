//! `users`: how many accounts, by state and role. One GET /Users; names and ids are not read.

use super::{CollectError, Collector};
use crate::jellyfin::Client;
use crate::jellyfin::dto::User;
use crate::sample::Family;

pub struct Users {
    client: Client,
}

impl Users {
    pub fn new(client: Client) -> Self {
        Users { client }
    }
}

/// Counts by (state, role); all four combinations are always present, zeros included, so that
/// "a new admin appeared" is a change of a series, not a series appearing.
pub fn count(users: &[User]) -> Family {
    let mut family = Family::gauge(
        "jellyfin_users",
        "Jellyfin accounts by state (enabled/disabled) and role (admin/user).",
    );
    for state in ["enabled", "disabled"] {
        for role in ["admin", "user"] {
            let n = users
                .iter()
                .filter(|u| {
                    let policy = u.policy.as_ref();
                    let disabled = policy.and_then(|p| p.is_disabled).unwrap_or(false);
                    let admin = policy.and_then(|p| p.is_administrator).unwrap_or(false);
                    (state == "disabled") == disabled && (role == "admin") == admin
                })
                .count();
            family.push(
                vec![("state", state.into()), ("role", role.into())],
                n as f64,
            );
        }
    }
    family
}

#[async_trait::async_trait]
impl Collector for Users {
    fn name(&self) -> &'static str {
        "users"
    }

    async fn collect(&mut self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let users: Vec<User> = self.client.get_json("/Users", None).await?;
        out.push(count(&users));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_real_10_11_capture_by_state_and_role() {
        let text = include_str!("../../tests/fixtures/jellyfin/users.10.11.11.json");
        let users: Vec<User> = serde_json::from_str(text).unwrap();
        let family = count(&users);
        let got: Vec<(String, f64)> = family
            .samples
            .iter()
            .map(|s| (format!("{}/{}", s.labels[0].1, s.labels[1].1), s.value))
            .collect();
        let expected = [
            ("enabled/admin", 1.0),
            ("enabled/user", 3.0),
            ("disabled/admin", 0.0),
            ("disabled/user", 0.0),
        ];
        assert_eq!(got, expected.map(|(k, v)| (k.to_string(), v)));
    }

    #[test]
    fn a_user_without_policy_counts_as_an_enabled_user() {
        let users: Vec<User> =
            serde_json::from_str(r#"[{}, {"Policy": {"IsDisabled": true}}]"#).unwrap();
        let values: Vec<f64> = count(&users).samples.iter().map(|s| s.value).collect();
        assert_eq!(values, [0.0, 1.0, 0.0, 1.0]);
    }
}
