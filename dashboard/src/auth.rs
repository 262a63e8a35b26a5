//! Who may look: users from a file of argon2 hashes, sessions in signed cookies.
//!
//! The users file has one user per line, `name:argon2-hash[:brand,brand...]`; a user with
//! brands sees only those brands' stores. The session cookie holds the user, its expiry and a
//! per-session token that every form posts back (CSRF); it is signed with the configured key
//! (`axum-extra`'s signed jar), `HttpOnly`, `Secure` and `SameSite=Strict`. A [`Guard`]
//! refuses a signed-out session's cookie and throttles guessing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum_extra::extract::cookie::{Cookie, SameSite, SignedCookieJar};

/// The session cookie's name.
pub const COOKIE: &str = "footfall_session";

/// A user of the dashboard.
#[derive(Clone, Debug)]
pub struct User {
    hash: String,
    /// Empty: every brand.
    pub brands: Vec<String>,
}

/// Why the users file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Bad {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot write the users file {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the users file; a bad line is an error naming it (a half-read file would lock
/// users out silently).
pub fn read_users(path: &Path) -> Result<HashMap<String, User>, UsersError> {
    let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| UsersError::Bad {
            path: path.display().to_string(),
            line: i + 1,
            reason: reason.to_owned(),
        };
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(hash)) = (parts.next(), parts.next()) else {
            return Err(bad("expected name:argon2-hash[:brands]"));
        };
        valid_name(name).map_err(|r| bad(&r))?;
        PasswordHash::new(hash).map_err(|_| bad("the hash is not an argon2 PHC string"))?;
        let brands = parts
            .next()
            .map(|b| {
                b.split(',')
                    .map(str::trim)
                    .filter(|b| !b.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if users
            .insert(
                name.to_owned(),
                User {
                    hash: hash.to_owned(),
                    brands,
                },
            )
            .is_some()
        {
            return Err(bad(&format!("user {name:?} appears twice")));
        }
    }
    Ok(users)
}

fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
    {
        return Err(format!(
            "user name {name:?}: 1-64 letters, digits and . _ - @"
        ));
    }
    Ok(())
}

/// Appends a user (refused if the name is taken or bad, or the password is shorter than 12
/// characters).
pub fn add_user(
    path: &Path,
    name: &str,
    password: &str,
    brands: &[String],
) -> Result<(), UsersError> {
    let bad = |reason: String| UsersError::Bad {
        path: path.display().to_string(),
        line: 0,
        reason,
    };
    valid_name(name).map_err(bad)?;
    if password.chars().count() < 12 {
        return Err(bad("the password must have at least 12 characters".into()));
    }
    if brands.iter().any(|b| b.contains([':', ',', '\n'])) {
        return Err(bad("a brand contains ':', ',' or a line break".into()));
    }
    let existing = if path.exists() {
        read_users(path)?
    } else {
        HashMap::new()
    };
    if existing.contains_key(name) {
        return Err(bad(format!("user {name:?} exists already")));
    }
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| bad(format!("cannot hash the password: {e}")))?;
    let line = format!("{name}:{hash}:{}\n", brands.join(","));
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|source| UsersError::Write {
            path: path.display().to_string(),
            source,
        })
}

impl User {
    /// Whether `password` is this user's (argon2, constant time).
    pub fn verify(&self, password: &str) -> bool {
        PasswordHash::new(&self.hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}

/// A signed-in session, from the cookie.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    /// Posted back by every form; unique to the session.
    pub csrf: String,
    /// Seconds since the epoch.
    pub expires: i64,
}

/// The session in `jar`, if its cookie is there, correctly signed and not expired.
pub fn session(jar: &SignedCookieJar, now_secs: i64) -> Option<Session> {
    let value = jar.get(COOKIE)?.value().to_owned();
    let mut parts = value.splitn(3, '|');
    let (user, expires, csrf) = (parts.next()?, parts.next()?, parts.next()?);
    let expires = expires.parse::<i64>().ok()?;
    (expires > now_secs).then(|| Session {
        user: user.to_owned(),
        csrf: csrf.to_owned(),
        expires,
    })
}

/// A new session's cookie for `user`, valid until `expires_secs`.
pub fn session_cookie(user: &str, expires_secs: i64) -> Cookie<'static> {
    let mut token = [0u8; 16];
    OsRng.fill_bytes(&mut token);
    let csrf: String = token.iter().map(|b| format!("{b:02x}")).collect();
    Cookie::build((COOKIE, format!("{user}|{expires_secs}|{csrf}")))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .build()
}

/// Failed sign-ins of one user name that lock it for [`LOCKOUT_SECS`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures count, and how long a lock lasts.
pub const LOCKOUT_SECS: i64 = 900;
/// Past this many remembered entries, the expired ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Signed-out sessions and failed sign-ins, in memory: a signed cookie stays valid until it
/// expires, so signing out records its session here until then; and a user name with
/// [`MAX_FAILURES`] failed sign-ins within [`LOCKOUT_SECS`] is refused until they pass
/// (names that do not exist too, so that the lock does not tell which do). A restart forgets
/// both (a new session key signs everyone out).
#[derive(Debug, Default)]
pub struct Guard {
    state: Mutex<GuardState>,
}

#[derive(Debug, Default)]
struct GuardState {
    /// Session token -> its expiry.
    revoked: HashMap<String, i64>,
    /// User name -> failures and when the first of them was.
    failures: HashMap<String, (u32, i64)>,
}

impl Guard {
    fn state(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds until `user` may try again, if locked.
    pub fn locked(&self, user: &str, now_secs: i64) -> Option<i64> {
        let state = self.state();
        let &(n, since) = state.failures.get(user)?;
        let left = since + LOCKOUT_SECS - now_secs;
        (n >= MAX_FAILURES && left > 0).then_some(left)
    }

    pub fn failed(&self, user: &str, now_secs: i64) {
        let mut state = self.state();
        if state.failures.len() >= PRUNE_AT {
            state
                .failures
                .retain(|_, (_, since)| *since + LOCKOUT_SECS > now_secs);
        }
        let entry = state
            .failures
            .entry(user.to_owned())
            .or_insert((0, now_secs));
        if entry.1 + LOCKOUT_SECS <= now_secs {
            *entry = (0, now_secs);
        }
        entry.0 += 1;
    }

    pub fn succeeded(&self, user: &str) {
        self.state().failures.remove(user);
    }

    /// Ends `s` for good (its cookie may have been copied).
    pub fn revoke(&self, s: &Session, now_secs: i64) {
        let mut state = self.state();
        if state.revoked.len() >= PRUNE_AT {
            state.revoked.retain(|_, expires| *expires > now_secs);
        }
        state.revoked.insert(s.csrf.clone(), s.expires);
    }

    pub fn is_revoked(&self, s: &Session) -> bool {
        self.state().revoked.contains_key(&s.csrf)
    }
}

/// The cookie that ends a session.
pub fn removal() -> Cookie<'static> {
    Cookie::build(COOKIE).path("/").build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_user_signs_in_with_their_password_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        add_user(&path, "ana", "correct horse battery", &["acme".into()]).expect("added");
        add_user(&path, "bo", "another long password", &[]).expect("added");
        let users = read_users(&path).expect("read");
        assert!(users["ana"].verify("correct horse battery"));
        assert!(!users["ana"].verify("correct horse battery!"));
        assert_eq!(users["ana"].brands, ["acme"]);
        assert!(users["bo"].brands.is_empty());
        assert!(!std::fs::read_to_string(&path)
            .expect("read")
            .contains("correct horse"));
        for (name, pw) in [
            ("ana", "a long enough one"),
            ("x y", "a long enough one"),
            ("cy", "short"),
        ] {
            assert!(add_user(&path, name, pw, &[]).is_err(), "{name}");
        }
        std::fs::write(&path, "ana:not-a-hash\n").expect("write");
        let e = read_users(&path).expect_err("bad").to_string();
        assert!(
            e.ends_with(":1: the hash is not an argon2 PHC string"),
            "{e}"
        );
    }

    #[test]
    fn guessing_locks_a_name_for_a_while_and_signed_out_sessions_stay_out() {
        let g = Guard::default();
        for i in 0..MAX_FAILURES {
            assert_eq!(g.locked("ana", 1000), None, "after {i} failures");
            g.failed("ana", 1000 + i64::from(i));
        }
        assert_eq!(g.locked("ana", 1100), Some(LOCKOUT_SECS - 100));
        assert_eq!(g.locked("bo", 1100), None, "another name is not locked");
        assert_eq!(
            g.locked("ana", 1000 + LOCKOUT_SECS),
            None,
            "the lock passes"
        );
        g.failed("ana", 1000 + LOCKOUT_SECS);
        assert_eq!(
            g.locked("ana", 1001 + LOCKOUT_SECS),
            None,
            "failures count afresh"
        );
        g.succeeded("ana");
        let s = Session {
            user: "ana".into(),
            csrf: "t1".into(),
            expires: 5000,
        };
        let other = Session {
            csrf: "t2".into(),
            ..s.clone()
        };
        g.revoke(&s, 1000);
        assert!(g.is_revoked(&s) && !g.is_revoked(&other));
    }
}
