//! The registry's whole state and its operations, with Confluent's semantics: schema ids are
//! global and never handed out twice; registering is idempotent and reuses the id of the same
//! schema under any subject; versions are per subject; deleting is soft first, permanent
//! second; compatibility is configured globally and per subject.
//!
//! A permanently deleted schema that no version refers to any more is forgotten: its id then
//! answers 40403, and registering the same text again gets a fresh id.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compat;
pub use crate::compat::Compatibility;
pub use crate::error::RegistryError;
pub use crate::stored::{SchemaType, StoredSchema};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// The last id handed out; ids start at 1.
    last_id: i32,
    schemas: BTreeMap<i32, StoredSchema>,
    subjects: BTreeMap<String, Subject>,
    /// None: Confluent's default, BACKWARD.
    global_compatibility: Option<Compatibility>,
    subject_compatibility: BTreeMap<String, Compatibility>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Subject {
    /// Oldest first; soft-deleted ones stay until deleted permanently.
    versions: Vec<Version>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Version {
    version: i32,
    id: i32,
    deleted: bool,
}

/// A version named in a request path: a number or `latest` (also spelled `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(i32),
}

impl VersionRef {
    /// Confluent's rule: `latest`, `-1`, or 1..=2^31-1; anything else is 42202.
    pub fn parse(s: &str) -> Result<VersionRef, RegistryError> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("latest") {
            return Ok(VersionRef::Latest);
        }
        match t.parse::<i32>() {
            Ok(-1) => Ok(VersionRef::Latest),
            Ok(n) if n > 0 => Ok(VersionRef::Number(n)),
            _ => Err(RegistryError::InvalidVersion(s.to_string())),
        }
    }
}

/// One version of a subject, as the REST API shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubjectVersion<'a> {
    pub version: i32,
    pub id: i32,
    pub deleted: bool,
    pub schema: &'a StoredSchema,
}

impl Registry {
    pub fn schema_by_id(&self, id: i32) -> Option<&StoredSchema> {
        self.schemas.get(&id)
    }

    /// Every id the registry knows (soft-deleted versions' schemas included).
    pub fn ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.schemas.keys().copied()
    }

    /// Ids of the subject's live (not soft-deleted) versions, oldest first; version = Some(n)
    /// pins one version (-1 = latest), None = all live versions.
    pub fn subject_ids(
        &self,
        subject: &str,
        version: Option<i32>,
    ) -> Result<Vec<i32>, RegistryError> {
        match version {
            None => {
                let ids: Vec<i32> = self.live(subject).map(|v| v.id).collect();
                if ids.is_empty() {
                    return Err(RegistryError::SubjectNotFound(subject.to_string()));
                }
                Ok(ids)
            }
            Some(n) => {
                let v = if n == -1 {
                    VersionRef::Latest
                } else {
                    VersionRef::Number(n)
                };
                Ok(vec![self.version(subject, v, false)?.id])
            }
        }
    }

    /// The latest live version's id.
    pub fn latest_id(&self, subject: &str) -> Result<i32, RegistryError> {
        Ok(self.version(subject, VersionRef::Latest, false)?.id)
    }

    fn live<'a>(&'a self, subject: &str) -> impl Iterator<Item = &'a Version> + 'a {
        self.subjects
            .get(subject)
            .into_iter()
            .flat_map(|s| s.versions.iter())
            .filter(|v| !v.deleted)
    }

    fn has_subject(&self, subject: &str, include_deleted: bool) -> bool {
        match self.subjects.get(subject) {
            None => false,
            Some(s) => s.versions.iter().any(|v| include_deleted || !v.deleted),
        }
    }

    fn view(&self, v: &Version) -> SubjectVersion<'_> {
        SubjectVersion {
            version: v.version,
            id: v.id,
            deleted: v.deleted,
            schema: &self.schemas[&v.id],
        }
    }

    /// Subjects with a live version (or any version when `include_deleted`), sorted,
    /// filtered by `prefix`.
    pub fn subjects(&self, include_deleted: bool, prefix: &str) -> Vec<String> {
        self.subjects
            .keys()
            .filter(|s| s.starts_with(prefix) && self.has_subject(s, include_deleted))
            .cloned()
            .collect()
    }

    /// The subject's version numbers, oldest first.
    pub fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        if !self.has_subject(subject, include_deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(self.subjects[subject]
            .versions
            .iter()
            .filter(|v| include_deleted || !v.deleted)
            .map(|v| v.version)
            .collect())
    }

    /// One version; soft-deleted ones only when `include_deleted`.
    pub fn version(
        &self,
        subject: &str,
        v: VersionRef,
        include_deleted: bool,
    ) -> Result<SubjectVersion<'_>, RegistryError> {
        let visible = |x: &&Version| include_deleted || !x.deleted;
        let versions = self
            .subjects
            .get(subject)
            .map(|s| &s.versions[..])
            .unwrap_or(&[]);
        let found = match v {
            VersionRef::Latest => versions.iter().rev().find(visible),
            VersionRef::Number(n) => versions.iter().find(|x| x.version == n).filter(visible),
        };
        match found {
            Some(x) => Ok(self.view(x)),
            None if !self.has_subject(subject, include_deleted) => {
                Err(RegistryError::SubjectNotFound(subject.to_string()))
            }
            None => Err(RegistryError::VersionNotFound(match v {
                VersionRef::Latest => -1,
                VersionRef::Number(n) => n,
            })),
        }
    }

    /// The version of `subject` holding this schema (40401 without the subject, 40403 without
    /// the schema).
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        include_deleted: bool,
    ) -> Result<SubjectVersion<'_>, RegistryError> {
        let candidate = StoredSchema::parse(schema_type, schema)?;
        if !self.has_subject(subject, include_deleted) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        self.subjects[subject]
            .versions
            .iter()
            .rev()
            .filter(|v| include_deleted || !v.deleted)
            .find(|v| self.schemas[&v.id].same_as(&candidate))
            .map(|v| self.view(v))
            .ok_or(RegistryError::SchemaNotFound)
    }

    /// Registers `schema` under `subject` and answers its global id. Idempotent: a schema
    /// equal to a live version answers that version's id and changes nothing. Otherwise the
    /// schema must be compatible with the live versions under the subject's effective level;
    /// it then becomes the next version, reusing the id of the same schema anywhere.
    pub fn register(
        &mut self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
    ) -> Result<i32, RegistryError> {
        let candidate = StoredSchema::parse(schema_type, schema)?;
        if let Some(v) = self
            .live(subject)
            .find(|v| self.schemas[&v.id].same_as(&candidate))
        {
            return Ok(v.id);
        }
        let messages = self.incompatibilities(subject, &candidate, None)?;
        if !messages.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_string(),
                messages,
            });
        }
        let id = match self.schemas.iter().find(|(_, s)| s.same_as(&candidate)) {
            Some((id, _)) => *id,
            None => {
                let id = self
                    .last_id
                    .checked_add(1)
                    .ok_or_else(|| RegistryError::Store("schema ids exhausted".into()))?;
                self.last_id = id;
                self.schemas.insert(id, candidate);
                id
            }
        };
        let versions = &mut self
            .subjects
            .entry(subject.to_string())
            .or_default()
            .versions;
        // Numbering goes on after soft-deleted versions, as Confluent's does.
        let version = versions.last().map_or(1, |v| v.version + 1);
        versions.push(Version {
            version,
            id,
            deleted: false,
        });
        Ok(id)
    }

    /// Compatibility messages of `schema` against the subject (empty = compatible): against
    /// one version when `against` is given, else against the live versions the subject's
    /// level asks for. No subject or `latest` of none: compatible.
    pub fn check_compatibility(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        against: Option<VersionRef>,
    ) -> Result<Vec<String>, RegistryError> {
        let candidate = StoredSchema::parse(schema_type, schema)?;
        self.incompatibilities(subject, &candidate, against)
    }

    fn incompatibilities(
        &self,
        subject: &str,
        candidate: &StoredSchema,
        against: Option<VersionRef>,
    ) -> Result<Vec<String>, RegistryError> {
        let existing: Vec<(i32, &StoredSchema)> = match against {
            None => self
                .live(subject)
                .map(|v| (v.version, &self.schemas[&v.id]))
                .collect(),
            Some(v) => match self.version(subject, v, false) {
                Ok(sv) => vec![(sv.version, sv.schema)],
                Err(_) if v == VersionRef::Latest => Vec::new(),
                Err(_) => {
                    return Err(RegistryError::VersionNotFound(match v {
                        VersionRef::Number(n) => n,
                        VersionRef::Latest => -1,
                    }))
                }
            },
        };
        Ok(compat::check(
            self.effective_compatibility(subject),
            candidate,
            &existing,
        ))
    }

    /// Subjects with a version (live, or any when `include_deleted`) holding schema `id`.
    pub fn subjects_for_id(
        &self,
        id: i32,
        include_deleted: bool,
    ) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .versions_for_id(id, include_deleted)?
            .into_iter()
            .map(|(s, _)| s)
            .fold(Vec::new(), |mut acc, s| {
                if acc.last() != Some(&s) {
                    acc.push(s);
                }
                acc
            }))
    }

    /// (subject, version) pairs holding schema `id`.
    pub fn versions_for_id(
        &self,
        id: i32,
        include_deleted: bool,
    ) -> Result<Vec<(String, i32)>, RegistryError> {
        if !self.schemas.contains_key(&id) {
            return Err(RegistryError::SchemaIdNotFound(id));
        }
        Ok(self
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions
                    .iter()
                    .filter(move |v| v.id == id && (include_deleted || !v.deleted))
                    .map(move |v| (name.clone(), v.version))
            })
            .collect())
    }

    /// Deletes a subject: soft (its live versions) or permanent (every version, only once all
    /// are soft-deleted; the subject's config goes too). Answers the deleted version numbers.
    pub fn delete_subject(
        &mut self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, RegistryError> {
        if !self.has_subject(subject, true) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        if !permanent && !self.has_subject(subject, false) {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        if permanent && self.has_subject(subject, false) {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
        }
        let entry = self.subjects.get_mut(subject).expect("checked above");
        if !permanent {
            let mut deleted = Vec::new();
            for v in entry.versions.iter_mut().filter(|v| !v.deleted) {
                v.deleted = true;
                deleted.push(v.version);
            }
            return Ok(deleted);
        }
        let removed = self.subjects.remove(subject).expect("checked above");
        self.subject_compatibility.remove(subject);
        for v in &removed.versions {
            self.forget_if_unused(v.id);
        }
        Ok(removed.versions.iter().map(|v| v.version).collect())
    }

    /// Deletes one version: soft, or permanent once soft-deleted. `latest` means the latest
    /// live version, or for a permanent delete the latest of any.
    pub fn delete_version(
        &mut self,
        subject: &str,
        v: VersionRef,
        permanent: bool,
    ) -> Result<i32, RegistryError> {
        let target = self
            .version(subject, v, permanent)
            .map(|sv| (sv.version, sv.deleted));
        let (number, deleted) = match (target, v) {
            (Ok(t), _) => t,
            // A soft-deleted version asked for by number: Confluent's 40406.
            (Err(RegistryError::VersionNotFound(_)), VersionRef::Number(n))
                if !permanent && self.version(subject, v, true).is_ok() =>
            {
                return Err(RegistryError::VersionSoftDeleted(subject.to_string(), n));
            }
            (Err(RegistryError::SubjectNotFound(_)), _) if self.has_subject(subject, true) => {
                return Err(RegistryError::VersionNotFound(match v {
                    VersionRef::Number(n) => n,
                    VersionRef::Latest => -1,
                }));
            }
            (Err(e), _) => return Err(e),
        };
        if permanent && !deleted {
            return Err(RegistryError::VersionNotSoftDeleted(
                subject.to_string(),
                number,
            ));
        }
        let entry = self.subjects.get_mut(subject).expect("version found");
        let at = entry
            .versions
            .iter()
            .position(|x| x.version == number)
            .expect("version found");
        if !permanent {
            entry.versions[at].deleted = true;
            return Ok(number);
        }
        let removed = entry.versions.remove(at);
        if entry.versions.is_empty() {
            self.subjects.remove(subject);
            self.subject_compatibility.remove(subject);
        }
        self.forget_if_unused(removed.id);
        Ok(number)
    }

    fn forget_if_unused(&mut self, id: i32) {
        let used = self
            .subjects
            .values()
            .any(|s| s.versions.iter().any(|v| v.id == id));
        if !used {
            self.schemas.remove(&id);
        }
    }

    /// The configured level: global when `subject` is None.
    pub fn compatibility(&self, subject: Option<&str>) -> Option<Compatibility> {
        match subject {
            None => self.global_compatibility,
            Some(s) => self.subject_compatibility.get(s).copied(),
        }
    }

    /// The level that applies to `subject`: its own, else the global one, else BACKWARD.
    pub fn effective_compatibility(&self, subject: &str) -> Compatibility {
        self.subject_compatibility
            .get(subject)
            .copied()
            .or(self.global_compatibility)
            .unwrap_or_default()
    }

    pub fn set_compatibility(&mut self, subject: Option<&str>, level: Compatibility) {
        match subject {
            None => self.global_compatibility = Some(level),
            Some(s) => {
                self.subject_compatibility.insert(s.to_string(), level);
            }
        }
    }

    /// Removes a configured level and answers it. The global level falls back to BACKWARD
    /// (answering what applied before); a subject without its own level is 40401.
    pub fn delete_compatibility(
        &mut self,
        subject: Option<&str>,
    ) -> Result<Compatibility, RegistryError> {
        match subject {
            None => Ok(self.global_compatibility.take().unwrap_or_default()),
            Some(s) => self
                .subject_compatibility
                .remove(s)
                .ok_or_else(|| RegistryError::SubjectNotFound(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
