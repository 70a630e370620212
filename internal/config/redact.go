package config

import (
	"net/url"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Redaction replaces the value of every secret field in Redacted's output.
const Redaction = "REDACTED"

// Redacted returns the effective config as YAML, with every non-empty string
// field tagged `secret:"true"` replaced by Redaction, and the password of
// every URL field tagged `secret:"userinfo"` (a proxy's user:password@)
// too. password_file and the like are paths, not secrets. c is not
// modified.
func (c *Config) Redacted() ([]byte, error) {
	cp := redactedCopy(reflect.ValueOf(*c)).Interface().(Config)
	return yaml.Marshal(&cp)
}

// redactedCopy returns a deep copy of v with secret fields redacted, so the
// copy shares no pointer, slice or map with v.
func redactedCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(redactedCopy(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			s.Index(i).Set(redactedCopy(v.Index(i)))
		}
		return s
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			m.SetMapIndex(it.Key(), redactedCopy(it.Value()))
		}
		return m
	case reflect.Struct:
		s := reflect.New(v.Type()).Elem()
		s.Set(v)
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Tag.Get("secret") == "userinfo" && f.Type.Kind() == reflect.String {
				s.Field(i).SetString(redactUserinfo(v.Field(i).String()))
				continue
			}
			if f.Tag.Get("secret") == "true" && f.Type.Kind() == reflect.String {
				if v.Field(i).String() != "" {
					s.Field(i).SetString(Redaction)
				}
				continue
			}
			s.Field(i).Set(redactedCopy(v.Field(i)))
		}
		return s
	}
	return v
}

// redactUserinfo replaces the password of a URL's userinfo (a proxy's
// user:password@) with Redaction.
func redactUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return Redaction
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Redaction)
		return u.String()
	}
	return raw
}
