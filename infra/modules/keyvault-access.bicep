// Keyguard's access to one Key Vault, deployed into the vault's resource group. Every grant is
// scoped to this vault alone.
//
// * Reader (management plane) — read the vault's properties (permission model, soft delete,
//   purge protection), its access policies and, through Microsoft.Authorization/*/read, the
//   role assignments and role definitions at and above the vault: what "verify Backup access"
//   inspects. No data access.
// * Data plane, RBAC vaults — the custom "Keyguard vault operator" role (main.bicep): read
//   key/secret metadata, update their attributes and tags (keep pinned versions enabled, tag
//   them), back them up for escrow. Not Crypto/Secrets Officer: those can create, delete and
//   purge, and Secrets User/Officer read secret values, which Keyguard never needs.
// * Data plane, access-policy vaults — one policy entry, added (not replacing the others):
//   keys get/list/update/backup; secrets get/list/set/backup. The access-policy model has no
//   narrower permission than "set" for updating a secret's attributes and tags, and no
//   metadata-only "get"; Keyguard reads metadata only, never values.
// * Remediation (off by default) — see the two resources at the end.

@description('Resource id of the Key Vault.')
param vaultId string

@description('True when the vault uses the Azure RBAC permission model (enableRbacAuthorization).')
param rbac bool

@description('Principal (object) id of Keyguard\'s identity.')
param keyguardPrincipalId string

@description('GUID of the Keyguard vault operator custom role (a tenant-wide definition, addressed in this vault\'s subscription).')
param keyguardVaultRoleGuid string

@description('Include keys/secrets backup in the access-policy entry (escrow on).')
param escrow bool

@description('Let Keyguard repair Backup\'s access to this vault.')
param remediation bool

@description('Let Keyguard switch purge protection on (a vaults/write).')
param enablePurgeProtection bool

@description('Object id of the Backup Management Service principal in this tenant.')
param backupPrincipalId string

@description('GUID of the custom role granting Backup its five data actions (RBAC remediation).')
param backupRoleGuid string

var roles = {
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
  keyVaultContributor: 'f25e0fa2-a7c8-4377-a976-54943a77a395'
  rbacAdministrator: 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'
}

var keyPermissions = concat([
  'get'
  'list'
  'update'
], escrow ? [
  'backup'
] : [])
var secretPermissions = concat([
  'get'
  'list'
  'set'
], escrow ? [
  'backup'
] : [])

// RBAC remediation may only create one kind of role assignment: the Backup custom role for the
// Backup Management Service principal. Deleting assignments is never allowed.
var assignBackupRoleOnly = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${backupRoleGuid}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAnyValues:GuidEquals {${backupPrincipalId}})) AND (!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'}))'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: last(split(vaultId, '/'))
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, keyguardPrincipalId, roles.reader)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: read vault properties, access policies and role assignments.'
  }
}

resource dataRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (rbac) {
  name: guid(vault.id, keyguardPrincipalId, keyguardVaultRoleGuid)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyguardVaultRoleGuid)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: keep needed key/secret versions enabled and tagged; escrow backups.'
  }
}

resource policy 'Microsoft.KeyVault/vaults/accessPolicies@2023-07-01' = if (!rbac) {
  parent: vault
  name: 'add'
  properties: {
    accessPolicies: [
      {
        tenantId: subscription().tenantId
        objectId: keyguardPrincipalId
        permissions: {
          keys: keyPermissions
          secrets: secretPermissions
          certificates: []
        }
      }
    ]
  }
}

// Access-policy vaults: adding Backup's policy entry is a management-plane write
// (vaults/accessPolicies/write), which only Key Vault Contributor (or broader) grants; it is
// also what enabling purge protection needs on any vault (vaults/write). Granted only when one
// of those switches is on, because it lets its holder rewrite the vault's policies.
resource contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if ((remediation && !rbac) || enablePurgeProtection) {
  name: guid(vault.id, keyguardPrincipalId, roles.keyVaultContributor)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultContributor)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard remediation: add Backup\'s access policy / enable purge protection.'
  }
}

// RBAC vaults: remediation assigns the Backup custom role to the Backup principal. Role Based
// Access Control Administrator, constrained by an ABAC condition to exactly that assignment,
// instead of User Access Administrator or Owner.
resource rbacAdmin 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (remediation && rbac) {
  name: guid(vault.id, keyguardPrincipalId, roles.rbacAdministrator)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.rbacAdministrator)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard remediation: may only assign the Backup custom role to Backup.'
    condition: assignBackupRoleOnly
    conditionVersion: '2.0'
  }
}
