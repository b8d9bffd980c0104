// Keyguard: the whole system in one deployment (subscription scope).
//
//   az deployment sub create -l <region> -f infra/main.bicep -p @my.parameters.json
//
// (my.parameters.json: a copy of infra/main.example.parameters.json, edited.)
//
// Creates Keyguard's resource group (identity, storage, Function App, monitoring, alert topic
// and alert rules), the two custom roles, and — through modules scoped to other resource
// groups and subscriptions — Event Grid system topics for every Key Vault and subscription,
// and Keyguard's least-privilege grants on subscriptions, vaults and Recovery Services vaults.
// Each grant is a custom role holding exactly the actions Keyguard's SDK calls need at that
// scope: tests/infra/test_arm_grants.py derives them from the code and fails on any drift.
//
// The names below are copies of shared/names.py and shared/events/catalog.py, and the
// keyguardSettings keys are shared/config.py SETTINGS: tests/infra/test_bicep_drift.py fails when
// they drift apart. See infra/README.md for the two-phase deployment (event subscriptions
// need the function code published first).
targetScope = 'subscription'

// --- where and what ----------------------------------------------------------------------

@description('Region of Keyguard\'s resource group and its resources.')
param location string

@description('Keyguard\'s resource group (created if missing).')
param appResourceGroupName string = 'rg-keyguard'

@description('Prefix of resource names (lower-case letters, digits, hyphens).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'keyguard'

@description('Key Vaults Keyguard watches: [{ id: <vault ARM id>, location: <vault region>, rbac: <true if enableRbacAuthorization> }].')
param keyVaults array

@description('Subscriptions Keyguard watches: [{ subscriptionId: <id>, topicResourceGroupName: <existing RG there for the ARM system topic> }].')
param watchedSubscriptions array

@description('Recovery Services vault ARM ids protecting the VMs (the Keyguard backup role on each).')
param recoveryVaultIds array = []

@description('Create the Event Grid subscriptions (second phase, after the function code is published).')
param deployEventSubscriptions bool = false

@description('Event Grid delivery attempts before dead-lettering (1-30).')
@minValue(1)
@maxValue(30)
param eventGridMaxDeliveryAttempts int = 30

@description('Minutes Event Grid retries an event before dead-lettering (1-1440).')
@minValue(1)
@maxValue(1440)
param eventGridEventTtlMinutes int = 1440

@description('E-mail address for Azure Monitor alerts (empty: none).')
param alertEmail string = ''

@description('Webhook receiving Keyguard\'s CloudEvents alerts, e.g. a Logic App HTTP trigger URL (empty: none).')
@secure()
param alertWebhookUrl string = ''

@description('Days an escrow blob stays immutable.')
param escrowImmutabilityDays int = 365

@description('Most Flex Consumption instances.')
param maximumInstanceCount int = 40

@description('Tags applied to every resource.')
param tags object = {}

// --- Keyguard settings (shared/config.py SETTINGS; defaults copied, checked by the tests) --

@description('KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID: az ad sp show --id 262044b1-e2ce-469f-a196-69ab7ada62d3 --query id -o tsv (the object id; the application id itself is refused)')
param backupManagementPrincipalId string

@allowed([
  'true'
  'false'
])
@description('KEYGUARD_REMEDIATION: Repair Backup\'s vault access and re-enable pinned versions.')
param remediation string = 'false'

@allowed([
  'true'
  'false'
])
@description('KEYGUARD_ENABLE_PURGE_PROTECTION: Switch purge protection on for vaults holding needed versions (irreversible).')
param enablePurgeProtection string = 'false'

@allowed([
  'true'
  'false'
])
@description('KEYGUARD_DRY_RUN: Plan and report, write nothing to Azure: no backup trigger, pin tag write, re-enable, recover, access repair, purge-protection switch or escrow blob.')
param dryRun string = 'false'

@allowed([
  'true'
  'false'
])
@description('KEYGUARD_ESCROW: Write backup_key/backup_secret blobs of needed objects.')
param escrow string = 'false'

@description('KEYGUARD_ALERT_DEDUPE_MINUTES: Identical alerts within this window are sent once.')
param alertDedupeMinutes string = '60'

@description('KEYGUARD_RETRY_BASE_SECONDS: First retry delay of a failed work item.')
param retryBaseSeconds string = '30'

@description('KEYGUARD_RETRY_CAP_SECONDS: Longest delay between two retries.')
param retryCapSeconds string = '3600'

@description('KEYGUARD_RETRY_BUDGET_HOURS: A work item is dead-lettered after this long.')
param retryBudgetHours string = '24'

@description('KEYGUARD_LEASE_SECONDS: Lease of an in-progress ledger record (at least 15).')
param leaseSeconds string = '300'

@description('KEYGUARD_OPERATION_DEADLINE_SECONDS: In-process retry deadline per step; with one HTTP call\'s retries it must end before host.json\'s functionTimeout.')
param operationDeadlineSeconds string = '120'

@description('KEYGUARD_COALESCE_SECONDS: Window in which events for one target coalesce.')
param coalesceSeconds string = '60'

@description('KEYGUARD_SWEEP_SCHEDULE: NCRONTAB schedule of the sweep (not a TimeSpan).')
param sweepSchedule string = '0 0 3 * * *'

@description('KEYGUARD_WATCH_SCHEDULE: NCRONTAB schedule of the watch on needed key/secret versions (not a TimeSpan).')
param watchSchedule string = '0 */15 * * * *'

@description('KEYGUARD_BACKUP_WINDOW_MINUTES: Coalescing window: one backup per VM per window.')
param backupWindowMinutes string = '15'

@description('KEYGUARD_BACKUP_DAILY_BUDGET: On-demand backups per VM per day (1-9).')
param backupDailyBudget string = '4'

@description('KEYGUARD_BACKUP_RETENTION_DAYS: Expiry of on-demand recovery points.')
param backupRetentionDays string = '30'

@description('KEYGUARD_EXPIRY_WARNING_DAYS: Days ahead the sweep warns that a needed key/secret version expires (1-365).')
param expiryWarningDays string = '30'

@allowed([
  'AzurePublic'
  'AzureUSGovernment'
  'AzureChinaCloud'
  'Custom'
])
@description('KEYGUARD_CLOUD: AzurePublic, AzureUSGovernment, AzureChinaCloud or Custom.')
param cloud string = 'AzurePublic'

@description('KEYGUARD_ARM_ENDPOINT: ARM endpoint override (Custom cloud).')
param armEndpoint string = ''

@description('KEYGUARD_ARM_AUDIENCE: ARM token audience override (Custom cloud).')
param armAudience string = ''

@description('KEYGUARD_STORAGE_SUFFIX: Storage endpoint suffix override (Custom cloud): a DNS suffix, not a URL.')
param storageSuffix string = ''

@allowed([
  'true'
  'false'
])
@description('KEYGUARD_KEYVAULT_VERIFY_CHALLENGE: Verify that Key Vault\'s auth challenge names the vault\'s domain.')
param keyVaultVerifyChallenge string = 'true'

@description('KEYGUARD_LRO_POLL_SECONDS: Polling interval of long-running operations.')
param lroPollSeconds string = '30'

@description('KEYGUARD_HTTP_RETRY_TOTAL: azure-core retry attempts per HTTP call.')
param httpRetryTotal string = '3'

// --- names (shared/names.py) and events (shared/events/catalog.py) --------------------------

var queueNames = [
  'keyguard-work'
  'keyguard-work-poison'
]
var tableNames = [
  'KeyguardLedger'
  'KeyguardDeadLetters'
  'KeyguardQuarantine'
  'KeyguardInventory'
  'KeyguardAlerts'
  'KeyguardBackups'
]
var deadLetterContainerName = 'keyguard-eventgrid-deadletter'
var escrowContainerName = 'keyguard-escrow'
var functionNames = {
  keyvaultEvents: 'keyvault_events'
  armEvents: 'arm_events'
  worker: 'worker'
  poisonDrain: 'poison_drain'
  sweep: 'sweep'
  watch: 'watch'
  replay: 'replay'
  report: 'restorability_report'
  restorePlan: 'restore_plan'
}
var alertTypePrefix = 'Keyguard.'
var keyVaultEventTypes = [
  'Microsoft.KeyVault.KeyNewVersionCreated'
  'Microsoft.KeyVault.KeyNearExpiry'
  'Microsoft.KeyVault.KeyExpired'
  'Microsoft.KeyVault.SecretNewVersionCreated'
  'Microsoft.KeyVault.SecretNearExpiry'
  'Microsoft.KeyVault.SecretExpired'
  'Microsoft.KeyVault.VaultAccessPolicyChanged'
]
var armEventTypes = [
  'Microsoft.Resources.ResourceWriteSuccess'
  'Microsoft.Resources.ResourceDeleteSuccess'
]
var armOperationNames = [
  'Microsoft.Compute/virtualMachines/extensions/write'
  'Microsoft.Compute/virtualMachines/write'
  'Microsoft.Compute/disks/write'
  'Microsoft.Compute/diskEncryptionSets/write'
  'Microsoft.KeyVault/vaults/write'
  'Microsoft.KeyVault/vaults/accessPolicies/write'
  'Microsoft.Authorization/roleAssignments/write'
  'Microsoft.Authorization/roleAssignments/delete'
]

// --- derived values ----------------------------------------------------------------------

var suffix = uniqueString(subscription().id, appResourceGroupName, namePrefix)
var storageAccountName = take(toLower('${replace(namePrefix, '-', '')}${suffix}'), 24)
var functionAppName = '${namePrefix}-${suffix}'
var escrowOn = escrow == 'true'
var remediationOn = remediation == 'true'
var purgeProtectionOn = enablePurgeProtection == 'true'
var vaultIds = [for v in keyVaults: v.id]
var subscriptionIds = [for s in watchedSubscriptions: s.subscriptionId]
var subscriptionScopes = [for s in watchedSubscriptions: '/subscriptions/${s.subscriptionId}']

// Keyguard's grants: one custom role per kind of scope, each with exactly what Keyguard's SDK
// calls need there (tests/infra/test_arm_grants.py derives the lists from the code).
//
// Every watched subscription: the subscription-wide lists (VMs, disks, disk encryption sets
// for the backup fan-out; vaults with KEYGUARD_VAULTS=*), the per-region backupStatus POST,
// re-reading a VM, its extensions, disks and DES after an ARM event, and role definitions
// (assignments name them by subscription-level id).
var keyguardSubscriptionActions = [
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Compute/virtualMachines/extensions/read'
  'Microsoft.Compute/disks/read'
  'Microsoft.Compute/diskEncryptionSets/read'
  'Microsoft.KeyVault/vaults/read'
  'Microsoft.RecoveryServices/locations/backupStatus/action'
  'Microsoft.Authorization/roleDefinitions/read'
]

// Every Key Vault (management plane): the vault's properties, and the role and deny
// assignments at and above it (what "verify Backup access" inspects).
var keyguardVaultActions = [
  'Microsoft.KeyVault/vaults/read'
  'Microsoft.Authorization/roleAssignments/read'
  'Microsoft.Authorization/denyAssignments/read'
]

// Keyguard's data actions on RBAC vaults: metadata read (keys' rotation policies too, for the
// sweep's foresight), attribute/tag update, recover of a soft-deleted needed object, and backup
// only when escrow is on. No create, delete, purge,
// crypto operations or secret values.
var keyguardVaultDataActions = concat([
  'Microsoft.KeyVault/vaults/keys/read'
  'Microsoft.KeyVault/vaults/keyrotationpolicies/read'
  'Microsoft.KeyVault/vaults/keys/update/action'
  'Microsoft.KeyVault/vaults/keys/recover/action'
  'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
  'Microsoft.KeyVault/vaults/secrets/update/action'
  'Microsoft.KeyVault/vaults/secrets/recover/action'
], escrowOn ? [
  'Microsoft.KeyVault/vaults/keys/backup/action'
  'Microsoft.KeyVault/vaults/secrets/backup/action'
] : [])

// Vault writes, only with remediation (add Backup's access policy) or the purge-protection
// switch (a vaults/write PATCH) on.
var keyguardVaultWriteActions = concat(remediationOn ? [
  'Microsoft.KeyVault/vaults/accessPolicies/write'
] : [], purgeProtectionOn ? [
  'Microsoft.KeyVault/vaults/write'
] : [])
var vaultWritesOn = remediationOn || purgeProtectionOn

// RBAC remediation: create role assignments, constrained by the assignment's ABAC condition
// (modules/keyvault-access.bicep) to the Backup role for the Backup principal.
var keyguardAssignerActions = [
  'Microsoft.Authorization/roleAssignments/write'
]

// Every Recovery Services vault: read the vault itself (its identity and CMK encryption
// settings: the vault CMK check's GET), protected items, their recovery points, policies and
// jobs; trigger an on-demand backup and follow its operation. Not Backup Operator, which can
// also change protection and restore.
var keyguardBackupActions = [
  'Microsoft.RecoveryServices/vaults/read'
  'Microsoft.RecoveryServices/vaults/backupProtectedItems/read'
  'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/read'
  'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/read'
  'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/backup/action'
  'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/operationsStatus/read'
  'Microsoft.RecoveryServices/vaults/backupPolicies/read'
  'Microsoft.RecoveryServices/vaults/backupJobs/read'
]
var keyguardVaultWriterRoleGuid = guid(subscription().id, namePrefix, 'keyguard-vault-writer')
var keyguardAssignerRoleGuid = guid(subscription().id, namePrefix, 'keyguard-backup-access-assigner')

// Exactly what Azure Backup needs on an RBAC vault (azure-facts §4.2), instead of the Key
// Vault Administrator role the docs also offer. Access remediation assigns it to Backup
// (KEYGUARD_BACKUP_ROLE_DEFINITION_ID names it; the name carries the prefix because role
// names are unique per tenant).
var backupVaultDataActions = [
  'Microsoft.KeyVault/vaults/keys/backup/action'
  'Microsoft.KeyVault/vaults/secrets/backup/action'
  'Microsoft.KeyVault/vaults/secrets/getSecret/action'
  'Microsoft.KeyVault/vaults/keys/read'
  'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
]
var backupRoleGuid = guid(subscription().id, namePrefix, 'backup-keyvault-reader')

resource appGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appResourceGroupName
  location: location
  tags: tags
}

resource keyguardSubscriptionRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, namePrefix, 'keyguard-subscription-reader')
  properties: {
    roleName: 'Keyguard subscription reader (${namePrefix})'
    description: 'Keyguard: list and read VMs, disks and disk encryption sets, backup status, vaults and role definitions.'
    type: 'CustomRole'
    permissions: [
      {
        actions: keyguardSubscriptionActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: union([
      subscription().id
    ], subscriptionScopes)
  }
}

resource keyguardVaultRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, namePrefix, 'keyguard-vault-operator')
  properties: {
    roleName: 'Keyguard vault operator (${namePrefix})'
    description: 'Keyguard: read the vault and its role assignments, read key/secret metadata, keep needed versions enabled and tagged, recover them, escrow backups.'
    type: 'CustomRole'
    permissions: [
      {
        actions: keyguardVaultActions
        notActions: []
        dataActions: keyguardVaultDataActions
        notDataActions: []
      }
    ]
    assignableScopes: union([
      subscription().id
    ], subscriptionScopes)
  }
}

resource keyguardVaultWriterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (vaultWritesOn) {
  name: keyguardVaultWriterRoleGuid
  properties: {
    roleName: 'Keyguard vault writer (${namePrefix})'
    description: 'Keyguard remediation: add Backup\'s access policy; switch purge protection on.'
    type: 'CustomRole'
    permissions: [
      {
        actions: keyguardVaultWriteActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: union([
      subscription().id
    ], subscriptionScopes)
  }
}

resource keyguardAssignerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (remediationOn) {
  name: keyguardAssignerRoleGuid
  properties: {
    roleName: 'Keyguard Backup access assigner (${namePrefix})'
    description: 'Keyguard remediation: assign roles (the assignment\'s condition allows only the Backup role for Backup and the DES key role for service principals).'
    type: 'CustomRole'
    permissions: [
      {
        actions: keyguardAssignerActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: union([
      subscription().id
    ], subscriptionScopes)
  }
}

resource keyguardBackupRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, namePrefix, 'keyguard-backup-operator')
  properties: {
    roleName: 'Keyguard backup operator (${namePrefix})'
    description: 'Keyguard: read protected items, recovery points, policies and jobs; trigger on-demand backups and follow them.'
    type: 'CustomRole'
    permissions: [
      {
        actions: keyguardBackupActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: union([
      subscription().id
    ], subscriptionScopes)
  }
}

resource backupVaultRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: backupRoleGuid
  properties: {
    roleName: 'Keyguard Backup Key Vault Reader (${namePrefix})'
    description: 'What the Backup Management Service needs to back up ADE keys and secrets.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: backupVaultDataActions
        notDataActions: []
      }
    ]
    assignableScopes: union([
      subscription().id
    ], subscriptionScopes)
  }
}

// --- Keyguard's resource group -----------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'keyguard-identity'
  scope: appGroup
  params: {
    name: '${namePrefix}-identity'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'keyguard-storage'
  scope: appGroup
  params: {
    name: storageAccountName
    location: location
    tags: tags
    queueNames: queueNames
    tableNames: tableNames
    deadLetterContainerName: deadLetterContainerName
    escrowContainerName: escrowContainerName
    enableEscrow: escrowOn
    escrowImmutabilityDays: escrowImmutabilityDays
    deploymentContainerName: 'app-package'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'keyguard-monitoring'
  scope: appGroup
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
  }
}

module alertTopic 'modules/alert-topic.bicep' = {
  name: 'keyguard-alert-topic'
  scope: appGroup
  params: {
    name: '${namePrefix}-alerts-${suffix}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
    alertTypePrefix: alertTypePrefix
    webhookUrl: alertWebhookUrl
  }
}

// Keyguard's own settings: every shared/config.py SETTINGS name except those listed in
// tests/infra/test_bicep_drift.py as meaningless in Azure; the identity/storage ones are added by
// functionapp.bicep.
var keyguardSettings = {
  KEYGUARD_TENANT_ID: tenant().tenantId
  KEYGUARD_SUBSCRIPTIONS: join(subscriptionIds, ',')
  KEYGUARD_VAULTS: join(vaultIds, ',')
  KEYGUARD_RECOVERY_VAULTS: join(recoveryVaultIds, ',')
  KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID: backupManagementPrincipalId
  KEYGUARD_BACKUP_ROLE_DEFINITION_ID: backupVaultRole.name
  KEYGUARD_REMEDIATION: remediation
  KEYGUARD_ENABLE_PURGE_PROTECTION: enablePurgeProtection
  KEYGUARD_DRY_RUN: dryRun
  KEYGUARD_ESCROW: escrow
  KEYGUARD_ALERT_TOPIC_ENDPOINT: alertTopic.outputs.endpoint
  KEYGUARD_ALERT_DEDUPE_MINUTES: alertDedupeMinutes
  KEYGUARD_RETRY_BASE_SECONDS: retryBaseSeconds
  KEYGUARD_RETRY_CAP_SECONDS: retryCapSeconds
  KEYGUARD_RETRY_BUDGET_HOURS: retryBudgetHours
  KEYGUARD_LEASE_SECONDS: leaseSeconds
  KEYGUARD_OPERATION_DEADLINE_SECONDS: operationDeadlineSeconds
  KEYGUARD_COALESCE_SECONDS: coalesceSeconds
  KEYGUARD_SWEEP_SCHEDULE: sweepSchedule
  KEYGUARD_WATCH_SCHEDULE: watchSchedule
  KEYGUARD_BACKUP_WINDOW_MINUTES: backupWindowMinutes
  KEYGUARD_BACKUP_DAILY_BUDGET: backupDailyBudget
  KEYGUARD_BACKUP_RETENTION_DAYS: backupRetentionDays
  KEYGUARD_EXPIRY_WARNING_DAYS: expiryWarningDays
  KEYGUARD_CLOUD: cloud
  KEYGUARD_ARM_ENDPOINT: armEndpoint
  KEYGUARD_ARM_AUDIENCE: armAudience
  KEYGUARD_STORAGE_SUFFIX: storageSuffix
  KEYGUARD_KEYVAULT_VERIFY_CHALLENGE: keyVaultVerifyChallenge
  KEYGUARD_LRO_POLL_SECONDS: lroPollSeconds
  KEYGUARD_HTTP_RETRY_TOTAL: httpRetryTotal
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'keyguard-functionapp'
  scope: appGroup
  params: {
    name: functionAppName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    keyguardSettings: keyguardSettings
    maximumInstanceCount: maximumInstanceCount
  }
}

// --- alert rules -------------------------------------------------------------------------

module alertRules 'modules/alert-rules.bicep' = {
  name: 'keyguard-alert-rules'
  scope: appGroup
  params: {
    namePrefix: namePrefix
    location: location
    tags: tags
    alertEmail: alertEmail
    appInsightsId: monitoring.outputs.appInsightsId
    poisonFunctionName: functionNames.poisonDrain
  }
}

// --- Event Grid: one system topic per vault and per subscription --------------------------

module keyVaultTopics 'modules/keyvault-topic.bicep' = [for v in keyVaults: {
  name: 'keyguard-kv-topic-${uniqueString(v.id)}'
  scope: resourceGroup(split(v.id, '/')[2], split(v.id, '/')[4])
  params: {
    vaultId: v.id
    location: v.location
    topicName: '${namePrefix}-kv-${last(split(v.id, '/'))}'
    tags: tags
    deploySubscription: deployEventSubscriptions
    functionResourceId: '${functionApp.outputs.id}/functions/${functionNames.keyvaultEvents}'
    includedEventTypes: keyVaultEventTypes
    maxDeliveryAttempts: eventGridMaxDeliveryAttempts
    eventTimeToLiveInMinutes: eventGridEventTtlMinutes
    appSubscriptionId: subscription().subscriptionId
    appResourceGroupName: appGroup.name
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    actionGroupId: alertRules.outputs.actionGroupId
  }
}]

module subscriptionTopics 'modules/subscription-topic.bicep' = [for s in watchedSubscriptions: {
  name: 'keyguard-arm-topic-${uniqueString(s.subscriptionId)}'
  scope: resourceGroup(s.subscriptionId, s.topicResourceGroupName)
  params: {
    watchedSubscriptionId: s.subscriptionId
    topicName: '${namePrefix}-arm-${s.subscriptionId}'
    tags: tags
    deploySubscription: deployEventSubscriptions
    functionResourceId: '${functionApp.outputs.id}/functions/${functionNames.armEvents}'
    includedEventTypes: armEventTypes
    operationNames: armOperationNames
    maxDeliveryAttempts: eventGridMaxDeliveryAttempts
    eventTimeToLiveInMinutes: eventGridEventTtlMinutes
    appSubscriptionId: subscription().subscriptionId
    appResourceGroupName: appGroup.name
    storageAccountName: storage.outputs.name
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    actionGroupId: alertRules.outputs.actionGroupId
  }
}]

// --- Keyguard's grants outside its resource group ------------------------------------------

module subscriptionReaders 'modules/subscription-reader.bicep' = [for s in watchedSubscriptions: {
  name: 'keyguard-sub-reader-${uniqueString(s.subscriptionId)}'
  scope: subscription(s.subscriptionId)
  params: {
    keyguardPrincipalId: identity.outputs.principalId
    roleGuid: keyguardSubscriptionRole.name
  }
}]

module keyVaultAccess 'modules/keyvault-access.bicep' = [for v in keyVaults: {
  name: 'keyguard-kv-access-${uniqueString(v.id)}'
  scope: resourceGroup(split(v.id, '/')[2], split(v.id, '/')[4])
  dependsOn: [
    keyguardVaultWriterRole
    keyguardAssignerRole
  ]
  params: {
    vaultId: v.id
    rbac: v.rbac
    keyguardPrincipalId: identity.outputs.principalId
    keyguardVaultRoleGuid: keyguardVaultRole.name
    keyguardVaultWriterRoleGuid: keyguardVaultWriterRoleGuid
    keyguardAssignerRoleGuid: keyguardAssignerRoleGuid
    escrow: escrowOn
    remediation: remediationOn
    enablePurgeProtection: purgeProtectionOn
    backupPrincipalId: backupManagementPrincipalId
    backupRoleGuid: backupVaultRole.name
  }
}]

module backupOperators 'modules/backup-operator.bicep' = [for rsvId in recoveryVaultIds: {
  name: 'keyguard-backup-${uniqueString(rsvId)}'
  scope: resourceGroup(split(rsvId, '/')[2], split(rsvId, '/')[4])
  params: {
    recoveryVaultId: rsvId
    keyguardPrincipalId: identity.outputs.principalId
    roleGuid: keyguardBackupRole.name
  }
}]

output functionAppName string = functionApp.outputs.name
output resourceGroupName string = appGroup.name
output storageAccountName string = storage.outputs.name
output alertTopicEndpoint string = alertTopic.outputs.endpoint
output identityPrincipalId string = identity.outputs.principalId
