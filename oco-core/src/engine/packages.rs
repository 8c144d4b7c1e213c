//! An administrator's operations on package families and packages: create, update (with the
//! dependency-cycle check), and record a payload.

use super::change::{unknown, Changed, PartOf};
use super::{Engine, EngineError};
use crate::chrono::{DateTime, Utc};
use crate::model::{
    dependency_cycle, InvalidField, Name, Package, PackageFamily, PackageId, Payload,
};
use crate::rules::RuleEvent;
use crate::store::{NewPackage, Store};

impl<S: Store> Engine<S> {
    /// Creates a package family.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::Duplicate`](crate::store::StoreError::Duplicate) for a name
    /// taken).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::Engine;
    /// use oco_core::model::Name;
    /// use oco_core::store::{MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let family = engine.create_family(Name::new("name", "Editor")?)?;
    /// assert_eq!(engine.store().family(family.id)?, family);
    /// assert!(engine.create_family(Name::new("name", "Editor")?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_family(&self, name: Name) -> Result<PackageFamily, EngineError> {
        Ok(self.store.create_family(name)?)
    }

    /// Creates a package, checking its family and dependencies first. A new package is in no
    /// package group, so no rule wants it yet: nothing is evaluated.
    ///
    /// # Errors
    ///
    /// [`EngineError::Reference`] naming `family` or `dependencies[i]` for an unknown one; the
    /// store's ([`StoreError::Duplicate`](crate::store::StoreError::Duplicate) for a version
    /// taken in the family).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::engine::{Engine, EngineError};
    /// use oco_core::model::{Name, PackageId, Procedure};
    /// use oco_core::store::{MemoryStore, NewPackage};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let family = engine.create_family(Name::new("name", "Editor")?)?;
    /// let v1 = engine.create_package(NewPackage::new(family.id, Name::new("version", "1")?, Procedure::new("x")))?;
    /// let v2 = NewPackage::new(family.id, Name::new("version", "2")?, Procedure::new("x"));
    /// let refused = engine.create_package(v2.clone().with_dependencies(vec![v1.id, PackageId(9)]));
    /// assert!(matches!(refused, Err(EngineError::Reference { field, .. }) if field == "dependencies[1]"));
    /// assert_eq!(engine.create_package(v2.with_dependencies(vec![v1.id]))?.dependencies, [v1.id]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_package(&self, package: NewPackage) -> Result<Package, EngineError> {
        self.store
            .family(package.family)
            .map_err(unknown("family"))?;
        self.check_dependencies(None, &package.dependencies)?;
        Ok(self.store.create_package(package)?)
    }

    /// Replaces the stored package of `package.id` with `package`, keeping its stored payload
    /// (which [`set_payload`](Self::set_payload) records), and re-evaluates the rules that have
    /// it. Returns the package as written.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`](crate::store::StoreError::NotFound),
    /// [`Duplicate`](crate::store::StoreError::Duplicate) for a version taken);
    /// [`EngineError::Invalid`] naming `family` for a package moving to another family, or
    /// `dependencies` for one depending on itself; [`EngineError::Reference`] naming
    /// `dependencies[i]` for an unknown one; [`EngineError::DependencyCycle`];
    /// [`EngineError::Reevaluation`] if re-evaluating failed (the old package is then put
    /// back).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::{Engine, EngineError};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let [v1, v2] = testkit::fixture(engine.store()).packages; // 2.0 depends on 1.0
    ///
    /// let mut edited = v1.clone();
    /// edited.install.command = "setup.exe /quiet".into();
    /// assert_eq!(engine.update_package(edited, now)?.value.install.command, "setup.exe /quiet");
    ///
    /// let mut looping = engine.store().package(v1.id)?;
    /// looping.dependencies = vec![v2.id];
    /// assert!(matches!(engine.update_package(looping, now), Err(EngineError::DependencyCycle(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_package(
        &self,
        package: Package,
        now: DateTime<Utc>,
    ) -> Result<Changed<Package>, EngineError> {
        let old = self.store.package(package.id)?;
        if package.family != old.family {
            return Err(InvalidField::new(
                "family",
                "a package cannot move to another family; create it in that family instead",
            )
            .into());
        }
        if package.dependencies != old.dependencies {
            self.check_dependencies(Some(package.id), &package.dependencies)?;
        }
        let new = Package {
            payload: old.payload,
            ..package
        };
        self.save_package(&old, new, now)
    }

    /// Records that package `id` has `payload` (`None`: none), the file being in place already.
    /// Only whether there is a payload reaches the jobs, so the rules that have the package are
    /// re-evaluated only when that changes; a new digest is the package's alone. Nothing is
    /// written when the payload is the stored one.
    ///
    /// # Errors
    ///
    /// The store's ([`StoreError::NotFound`](crate::store::StoreError::NotFound));
    /// [`EngineError::Reevaluation`] if re-evaluating failed (the old payload is then recorded
    /// again).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::engine::Engine;
    /// use oco_core::model::{Payload, Sha256Digest};
    /// use oco_core::store::{testkit, MemoryStore, Store};
    ///
    /// let engine = Engine::new(MemoryStore::new());
    /// let now = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    /// let package = testkit::fixture(engine.store()).other.id;
    /// let payload = Payload::new(1024, Sha256Digest([7; 32]));
    /// assert_eq!(engine.set_payload(package, Some(payload), now)?.value.payload, Some(payload));
    /// assert!(!engine.set_payload(package, None, now)?.value.has_payload());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_payload(
        &self,
        id: PackageId,
        payload: Option<Payload>,
        now: DateTime<Utc>,
    ) -> Result<Changed<Package>, EngineError> {
        let old = self.store.package(id)?;
        let new = Package {
            payload,
            ..old.clone()
        };
        if new == old {
            return Ok(Changed {
                value: new,
                evaluations: Vec::new(),
            });
        }
        if new.has_payload() == old.has_payload() {
            self.store.update_package(&new)?;
            return Ok(Changed {
                value: new,
                evaluations: Vec::new(),
            });
        }
        self.save_package(&old, new, now)
    }

    /// Replaces `old` with `new` and re-evaluates the rules that have it.
    fn save_package(
        &self,
        old: &Package,
        new: Package,
        now: DateTime<Utc>,
    ) -> Result<Changed<Package>, EngineError> {
        let event = RuleEvent::PackageEdited { package: new.id };
        let before = self.world_for(&event)?;
        let store = &self.store;
        let changed = self.change(
            PartOf::Event,
            &before,
            now,
            || Ok(store.update_package(&new)?),
            |()| event.clone(),
            |()| store.update_package(old),
        )?;
        Ok(Changed {
            value: new,
            evaluations: changed.evaluations,
        })
    }

    /// Checks the dependencies `package` (`None` while it is being created) is to have: none is
    /// the package itself, each exists, and none closes a cycle. The stores refuse the same;
    /// checking first says which field is wrong.
    fn check_dependencies(
        &self,
        package: Option<PackageId>,
        dependencies: &[PackageId],
    ) -> Result<(), EngineError> {
        if package.is_some_and(|id| dependencies.contains(&id)) {
            return Err(
                InvalidField::new("dependencies", "a package cannot depend on itself").into(),
            );
        }
        for (i, &dependency) in dependencies.iter().enumerate() {
            self.store
                .package(dependency)
                .map_err(unknown(format!("dependencies[{i}]")))?;
        }
        let Some(id) = package else {
            // Nothing depends on a package being created: it cannot close a cycle.
            return Ok(());
        };
        let cycle = dependency_cycle(id, dependencies, |other| {
            self.store
                .package(other)
                .map(|package| package.dependencies)
        })?;
        match cycle {
            Some(cycle) => Err(cycle.into()),
            None => Ok(()),
        }
    }
}
